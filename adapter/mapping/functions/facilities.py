"""Functions that read the consortium as data: finding a member facility, comparing levels.

The consortium file is given to every translation as the variable ``@consortium``
(``facilities``: id, name, level, rank, namespace, identifiers of each member), so a
mapping can recognise the other facility a document names (a referral's receiver, the
sender of a copy) without any facility written into code.
"""

from __future__ import annotations

from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import text


def _facilities(ev: FunctionContext) -> list[dict[str, Any]]:
    consortium = ev.vars.get("consortium")
    found = consortium.get("facilities") if isinstance(consortium, dict) else None
    return found if isinstance(found, list) else []


def _normal(value: str) -> str:
    return "".join(value.split()).casefold()


@transform("facility_of")
def facility_of(ev: FunctionContext, key: Any) -> dict[str, Any] | None:
    """The member facility whose id, name or one of whose identifier values is ``key``
    (spaces ignored, case folded); a facility data mapping (as ``@facility``) or nothing.
    An identifier value matches before a name, so a code is never confused with a name."""
    if isinstance(key, dict):
        return key if key.get("id") else None
    wanted = _normal(text(key))
    if not wanted:
        return None
    facilities = _facilities(ev)
    for facility in facilities:
        if wanted == _normal(str(facility.get("id", ""))) or any(
            wanted == _normal(str(i.get("value", ""))) for i in facility.get("identifiers") or []
        ):
            return facility
    for facility in facilities:
        if wanted == _normal(str(facility.get("name", ""))):
            return facility
    return None


@transform("level_direction")
def level_direction(ev: FunctionContext, sender: Any, receiver: Any) -> str | None:
    """``up`` when the receiving facility's care level is higher than the sender's (village <
    township < county < city < province), ``down`` when lower; nothing when the levels are
    equal or either facility is not a member (looked up as ``facility_of`` does)."""
    a, b = facility_of(ev, sender), facility_of(ev, receiver)
    if a is None or b is None:
        return None
    rank_a, rank_b = a.get("rank"), b.get("rank")
    if not isinstance(rank_a, int) or not isinstance(rank_b, int) or rank_a == rank_b:
        return None
    return "up" if rank_b > rank_a else "down"
