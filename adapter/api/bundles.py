"""Bundles of the read API: searchset and history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from adapter.errors import Issue, operation_outcome
from adapter.fhir.dates import format_instant
from adapter.store.models import ResourceVersion

PAGING_PARAMS = ("_count", "_offset")


def searchset(
    *,
    base: str,
    resource_type: str,
    total: int,
    bodies: list[dict[str, Any]],
    params: Sequence[tuple[str, str]],
    count: int,
    offset: int,
    warnings: list[Issue] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle with self/first/previous/next links carrying ``params``."""
    kept = [(k, v) for k, v in params if k not in PAGING_PARAMS]

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{base}/{resource_type}?{query}"}

    links = [link("self", offset), link("first", 0)]
    if offset > 0 and count > 0:
        links.append(link("previous", max(0, offset - count)))
    if count > 0 and offset + count < total:
        links.append(link("next", offset + count))
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{body['resourceType']}/{body['id']}",
            "resource": body,
            "search": {"mode": "match"},
        }
        for body in bodies
    ]
    if warnings:
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": operation_outcome(warnings),
            "search": {"mode": "outcome"},
        })
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "timestamp": format_instant(datetime.now(UTC)),
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def history(
    *,
    base: str,
    resource_type: str,
    resource_id: str,
    total: int,
    versions: list[ResourceVersion],
    count: int,
    offset: int,
) -> dict[str, Any]:
    """A history Bundle of one resource, newest version first."""
    url = f"{base}/{resource_type}/{resource_id}/_history"

    def link(relation: str, at: int) -> dict[str, str]:
        return {"relation": relation, "url": f"{url}?{urlencode({'_count': count, '_offset': at})}"}

    links = [link("self", offset)]
    if offset > 0 and count > 0:
        links.append(link("previous", max(0, offset - count)))
    if count > 0 and offset + count < total:
        links.append(link("next", offset + count))
    entries = [
        {
            "fullUrl": f"{base}/{resource_type}/{resource_id}",
            "resource": version.body,
            "request": {"method": "PUT", "url": f"{resource_type}/{resource_id}"},
            "response": {
                "status": "201 Created" if version.version_id == 1 else "200 OK",
                "etag": f'W/"{version.version_id}"',
                "lastModified": format_instant(version.last_updated),
            },
        }
        for version in versions
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "timestamp": format_instant(datetime.now(UTC)),
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle
