"""Bundles of the read API: searchset and history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Row

from adapter.errors import Issue, operation_outcome
from adapter.fhir.dates import format_instant

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
    links = _paging_links(
        f"{base}/{resource_type}", kept, total=total, count=count, offset=offset, first=True
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{body['resourceType']}/{body['id']}",
            "resource": body,
            "search": {"mode": "match"},
        }
        for body in bodies
    ]
    if warnings:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": operation_outcome(warnings),
                "search": {"mode": "outcome"},
            }
        )
    return _bundle("searchset", total, links, entries)


def operation_searchset(
    *,
    base: str,
    path: str,
    params: Sequence[tuple[str, str]],
    total: int,
    matches: list[dict[str, Any]],
    included: list[dict[str, Any]],
    count: int,
    offset: int,
) -> dict[str, Any]:
    """The searchset Bundle of an operation (``Patient/1/$everything``): one page of
    matches, the resources they refer to as ``include`` entries, paging links."""
    kept = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    links = _paging_links(
        f"{base}/{path}", kept, total=total, count=count, offset=offset, first=True
    )
    seen = {(b["resourceType"], b["id"]) for b in matches}
    entries = [_search_entry(base, body, "match") for body in matches]
    entries += [
        _search_entry(base, body, "include")
        for body in included
        if (body["resourceType"], body["id"]) not in seen
    ]
    return _bundle("searchset", total, links, entries)


def _search_entry(base: str, body: dict[str, Any], mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{body['resourceType']}/{body['id']}",
        "resource": body,
        "search": {"mode": mode},
    }


def history(
    *,
    base: str,
    path: str,
    params: Sequence[tuple[str, str]],
    total: int,
    versions: Sequence[Row[Any]],
    count: int,
    offset: int,
) -> dict[str, Any]:
    """A history Bundle (``path``: ``_history``, ``Type/_history`` or ``Type/id/_history``),
    newest version first, with paging links carrying ``params``."""
    kept = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    links = _paging_links(
        f"{base}/{path}", kept, total=total, count=count, offset=offset, first=True
    )
    return _bundle("history", total, links, [_history_entry(base, v) for v in versions])


def _history_entry(base: str, version: Row[Any]) -> dict[str, Any]:
    key = f"{version.resource_type}/{version.id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{key}"}
    if version.deleted:
        entry["request"] = {"method": "DELETE", "url": key}
        status = "204 No Content"
    else:
        entry["resource"] = version.body
        entry["request"] = {"method": "PUT", "url": key}
        status = "201 Created" if version.version_id == 1 else "200 OK"
    entry["response"] = {
        "status": status,
        "etag": f'W/"{version.version_id}"',
        "lastModified": format_instant(version.last_updated),
    }
    return entry


def _paging_links(
    url: str, kept: list[tuple[str, str]], *, total: int, count: int, offset: int, first: bool
) -> list[dict[str, str]]:
    """self (and first), previous and next links, each carrying ``kept`` and the paging."""

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{url}?{query}"}

    links = [link("self", offset)]
    if first:
        links.append(link("first", 0))
    if offset > 0 and count > 0:
        links.append(link("previous", max(0, offset - count)))
    if count > 0 and offset + count < total:
        links.append(link("next", offset + count))
    return links


def _bundle(
    kind: str, total: int, links: list[dict[str, str]], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": kind,
        "timestamp": format_instant(datetime.now(UTC)),
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle
