"""The searchset Bundle: matches, included resources, an outcome, paging links."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from adapter.errors import Issue, operation_outcome
from adapter.fhir.dates import format_instant

PAGING_PARAMS = ("_count", "_offset")


def searchset(
    *,
    base: str,
    path: str,
    total: int | None,
    matches: Sequence[dict[str, Any]],
    included: Sequence[dict[str, Any]] = (),
    params: Sequence[tuple[str, str]],
    count: int,
    offset: int,
    has_more: bool,
    warnings: Sequence[Issue] = (),
) -> dict[str, Any]:
    """``path`` is the type (``Observation``) or "" for a system-level search."""
    kept = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    url = f"{base}/{path}" if path else base

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{url}?{query}"}

    links = [link("self", offset), link("first", 0)]
    if offset > 0 and count > 0:
        links.append(link("previous", max(0, offset - count)))
    if count > 0 and has_more:
        links.append(link("next", offset + count))
    entries = [_entry(base, body, "match") for body in matches]
    entries.extend(_entry(base, body, "include") for body in included)
    if warnings:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": operation_outcome(list(warnings)),
                "search": {"mode": "outcome"},
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "timestamp": format_instant(datetime.now(UTC)),
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(base: str, body: dict[str, Any], mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{body['resourceType']}/{body['id']}",
        "resource": body,
        "search": {"mode": mode},
    }
