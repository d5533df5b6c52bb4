"""What storing does when a resource with the same id is already stored: the ``on_conflict``
policy of the template that made it (data, docs/mapping-language.md), one of

replace               the new resource replaces the stored one (also the rule without a policy)
update-given          an element the new resource gives replaces the stored one, one it does
                      not give keeps its stored value, the lists named in ``accumulate`` are
                      joined (new first, duplicates dropped): a Patient known to several
                      facilities keeps every facility's numbers (a township's message must not
                      erase the county hospital's record number); an order's status change
keep-first-and-warn   copies of one document: the copy stored first wins
keep-newer-and-warn   versions of one document: an older version never undoes a newer one
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from adapter.errors import Issue


def _key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


Same = Callable[[Any, Any], bool]  # whether two differing values name the same thing


def keep_first(
    resource: dict[str, Any],
    stored: dict[str, Any] | None,
    policy: dict[str, Any],
    same: Same | None = None,
) -> tuple[dict[str, Any], list[Issue]]:
    """The ``keep-first-and-warn`` policy of a resource template (``on_conflict``): several
    copies of one document (a referral's stub and its slip) make the same resource. The copy
    stored first wins: a later copy only adds elements the stored one lacks, and the lists
    named in ``accumulate`` are joined (stored items first). Each element named in
    ``compare`` that both copies give with different values is a warning naming the element,
    so the disagreement is reported, never silently settled. A list both compared and
    accumulated is joined only when the later copy keeps every stored item (it adds, e.g.
    the receiving doctor an answer names); otherwise the stored list is kept and warned.
    Values that differ but that ``same`` holds for (the receiver's own record of the
    person the slip names: one person in the patient index) are a note, not a warning."""
    if not stored:
        return resource, []
    merged = {k: v for k, v in stored.items() if k != "meta"}
    for name, value in resource.items():
        if name not in merged:
            merged[name] = value
    compared = set(policy.get("compare") or [])
    added: set[str] = set()  # compared lists the later copy only adds to: no conflict
    for name in policy.get("accumulate") or []:
        if name in compared and name in stored and name in resource:
            new = {_key(i) for i in resource.get(name) or []}
            if not all(_key(i) in new for i in stored.get(name) or []):
                continue  # the copy drops or changes a stored item: kept, warned below
            added.add(name)
        items = list(stored.get(name) or [])
        seen = {_key(i) for i in items}
        for item in resource.get(name) or []:
            if _key(item) not in seen:
                seen.add(_key(item))
                items.append(item)
        if items:
            merged[name] = items
    issues: list[Issue] = []
    kind = resource["resourceType"]
    for name in policy.get("compare") or []:
        if name in added:
            continue
        if name in stored and name in resource and _key(stored[name]) != _key(resource[name]):
            if same is not None and same(stored[name], resource[name]):
                issues.append(
                    Issue(
                        "information",
                        "informational",
                        f"{kind}/{resource['id']}: this copy names the {name} by another "
                        f"record of the same person (patient index); the stored {name} is kept",
                        expression=f"{kind}.{name}",
                    )
                )
                continue
            issues.append(
                Issue(
                    "warning",
                    "conflict",
                    f"{kind}/{resource['id']}: this copy gives a different {name} than the copy "
                    f"stored before; the stored {name} is kept",
                    expression=f"{kind}.{name}",
                )
            )
    return merged, issues


def keep_newer(
    resource: dict[str, Any], stored: dict[str, Any] | None, policy: dict[str, Any]
) -> tuple[dict[str, Any], list[Issue]]:
    """The ``keep-newer-and-warn`` policy: versions of one document (a corrected discharge
    summary replacing the first) update the same resource; a version older than the stored
    one by the dateTime element ``by`` (a resend, a queue out of order) must not undo the
    correction: the stored resource is kept, with a warning. Otherwise the new one is stored
    as made. Values that are not full date-times with a zone are not compared."""
    name = policy["by"]
    new_time, stored_time = _instant(resource.get(name)), _instant((stored or {}).get(name))
    if stored is None or new_time is None or stored_time is None or new_time >= stored_time:
        return resource, []
    kind = resource["resourceType"]
    kept = {k: v for k, v in stored.items() if k != "meta"}
    return kept, [
        Issue(
            "warning",
            "conflict",
            f"{kind}/{resource['id']}: this version ({name} {resource[name]}) is older than "
            f"the one stored ({stored[name]}); the stored one is kept",
            expression=f"{kind}.{name}",
        )
    ]


def update_given(
    resource: dict[str, Any], stored: dict[str, Any] | None, policy: dict[str, Any]
) -> tuple[dict[str, Any], list[Issue]]:
    """The ``update-given`` policy: later messages about one thing carry only part of it (an
    order's cancel or status change gives the order number and the new status, not the
    requester or the reason). Each element the new message gives replaces the stored one;
    an element it does not give keeps its stored value; the lists named in ``accumulate``
    are joined (new items first, duplicates dropped), so a cancel note adds to the order's
    notes instead of replacing them."""
    if not stored:
        return resource, []
    merged = dict(resource)
    for name, value in stored.items():
        if name not in merged and name != "meta":
            merged[name] = value
    for name in policy.get("accumulate") or []:
        items = list(resource.get(name) or [])
        seen = {_key(i) for i in items}
        for item in stored.get(name) or []:
            if _key(item) not in seen:
                seen.add(_key(item))
                items.append(item)
        if items:
            merged[name] = items
    return merged, []


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


_POLICIES = {
    "keep-first-and-warn": keep_first,
    "keep-newer-and-warn": keep_newer,
    "update-given": update_given,
}


def _policy_of(
    resource: dict[str, Any], policies: Mapping[Any, dict[str, Any]]
) -> dict[str, Any] | None:
    return policies.get((resource["resourceType"], resource["id"])) or policies.get(
        resource["resourceType"]
    )


def reads_stored(resource: dict[str, Any], policies: Mapping[Any, dict[str, Any]]) -> bool:
    """Whether storing this resource depends on the stored one (every policy but
    ``replace``): the store must then hold the resource's row from the read to the write, so
    that two messages about one patient at the same moment cannot both merge with the same
    old version (the later write would drop what the earlier one added)."""
    policy = _policy_of(resource, policies)
    return policy is not None and policy["policy"] in _POLICIES


def merge_stored(
    resource: dict[str, Any],
    read: Callable[[str, str], dict[str, Any] | None],
    policies: Mapping[Any, dict[str, Any]],
    same: Same | None = None,
) -> tuple[dict[str, Any], list[Issue]]:
    """A resource as it is to be stored, by the ``on_conflict`` policy of the template that
    made it (none, or ``replace``: as made). ``policies`` is keyed by (type, id), as a
    translation gives them (``Translation.policies``: only the resources of templates that
    declare one); a key that is just the type applies to every resource of that type.
    ``read`` must give the stored version as locked by the caller's transaction
    (``adapter.store.lock_resources``), never an earlier read. ``same``: see keep_first."""
    policy = _policy_of(resource, policies)
    apply = _POLICIES.get(policy["policy"]) if policy is not None else None
    if apply is None:
        return resource, []
    stored = read(resource["resourceType"], resource["id"])
    if apply is keep_first:
        return keep_first(resource, stored, policy, same)
    return apply(resource, stored, policy)
