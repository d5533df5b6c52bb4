"""Allowed referral paths (consortium file ``referrals.paths``, docs/referral-loop.md): a
slip between two member facilities that goes another way is kept, and flagged — a
warning on its message and a tag on its ServiceRequest, searchable with ``_tag``.

Not set: up from a lower to a higher care level, down from a higher to a lower, same
level both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapter.consortium import Consortium, Level
from adapter.errors import Issue
from adapter.referral.rules import DIRECTION_SYSTEM, FLAG_SYSTEM
from adapter.routing.care import REFERRAL, member_of

if TYPE_CHECKING:
    from adapter.pipeline.steps import Work

OUTSIDE = "outside-allowed-paths"
WORDS = {"up": "上转", "down": "下转", None: "转诊"}


def path_problem(
    consortium: Consortium, sender: str, receiver: str, direction: str | None
) -> str | None:
    """Why the referral from ``sender`` to ``receiver`` (member facility ids) as
    ``direction`` is outside the allowed paths, or None when it is allowed."""
    a, b = consortium.facility(sender), consortium.facility(receiver)
    if a is None or b is None:
        return None
    paths = consortium.referrals.paths
    if paths is None:
        allowed = a.level == b.level or direction is None
        allowed = allowed or (direction == "up") == (b.level > a.level)
    else:
        allowed = any(
            p.from_ == a.level and p.to == b.level and p.direction in (None, direction)
            for p in paths
        )
    if allowed:
        return None
    return (
        f"referral outside the allowed paths: {WORDS.get(direction, direction)} from "
        f"{a.id} ({Level(a.level).name}) to {b.id} ({Level(b.level).name})"
    )


def flag_referral_paths(work: Work) -> None:
    """Pipeline step (before ``save``): tag and warn about slips outside the paths."""
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in work.resources}
    for resource in work.resources:
        if resource.get("resourceType") != "ServiceRequest" or not _is_referral(resource):
            continue
        sender = member_of(work.consortium, resource.get("requester"), by_ref)
        receiver = next(
            (
                m
                for p in resource.get("performer") or []
                if (m := member_of(work.consortium, p, by_ref)) is not None
            ),
            None,
        )
        if sender is None or receiver is None:
            continue  # a facility outside the consortium: no path to check
        problem = path_problem(work.consortium, sender, receiver, _direction(resource))
        if problem is None:
            continue
        tags = resource.setdefault("meta", {}).setdefault("tag", [])
        if not any(t.get("system") == FLAG_SYSTEM and t.get("code") == OUTSIDE for t in tags):
            tags.append({"system": FLAG_SYSTEM, "code": OUTSIDE, "display": "转诊路径不在允许范围"})
        where = work.origins.get(("ServiceRequest", resource["id"])) or "ServiceRequest"
        work.issues.append(
            Issue("warning", "business-rule", problem, location=where, expression="ServiceRequest")
        )


def _is_referral(resource: Mapping[str, Any]) -> bool:
    return any(
        c.get("code") == REFERRAL
        for concept in resource.get("category") or []
        for c in concept.get("coding") or []
    )


def _direction(resource: Mapping[str, Any]) -> str | None:
    return next(
        (
            c.get("code")
            for concept in resource.get("category") or []
            for c in concept.get("coding") or []
            if c.get("system") == DIRECTION_SYSTEM
        ),
        None,
    )
