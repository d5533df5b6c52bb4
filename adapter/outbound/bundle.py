"""The PUT Bundle every Bundle-sending destination sends, built in one place.

Each entry is a PUT to ``Type/id`` with the adapter's deterministic id, so applying a
Bundle again updates the same resources (a retry or a replay never makes a second one).
The body is the stored resource without the ``meta`` elements the receiver stamps itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from adapter.outbound.base import DeliveryItem

# each entry's sequence number for its destination: an extension on the Bundle entry, and
# on a single PUT the header (docs/routing.md, "Sequence numbers")
SEQUENCE_URL = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/delivery-sequence"
SEQUENCE_HEADER = "X-Delivery-Sequence"

# meta elements the destination stamps itself; sending ours could be taken for a version
# precondition or simply be wrong there
_SERVER_META = ("versionId", "lastUpdated")


def outgoing(resource: dict[str, Any]) -> dict[str, Any]:
    """The body to send: the stored resource without the meta the destination stamps."""
    meta = resource.get("meta")
    if not isinstance(meta, dict) or not any(k in meta for k in _SERVER_META):
        return resource
    kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
    body = {k: v for k, v in resource.items() if k != "meta"}
    if kept:
        body["meta"] = kept
    return body


def unique_resources(items: Iterable[DeliveryItem]) -> list[DeliveryItem]:
    """One item per resource, in first-seen order: two outbox rows of one resource (two
    versions) carry the same current body, and a transaction may not name it twice."""
    seen: dict[tuple[str, str], DeliveryItem] = {}
    for item in items:
        seen.setdefault((item.resource_type, item.resource_id), item)
    return list(seen.values())


def put_bundle(
    items: Iterable[DeliveryItem],
    *,
    bundle_type: Literal["transaction", "batch"] = "transaction",
    base_url: str | None = None,
) -> dict[str, Any]:
    """A ``transaction`` (or ``batch``) Bundle of one PUT per resource. ``fullUrl`` is
    ``<base_url>/Type/id`` for a server, ``Type/id`` when there is no base (a file)."""
    prefix = f"{base_url}/" if base_url else ""
    listed = list(items)
    # two rows of one resource go as one entry: it carries every number they were given
    numbers: dict[tuple[str, str], list[int]] = {}
    for i in listed:
        if i.sequence is not None:
            numbers.setdefault((i.resource_type, i.resource_id), []).append(i.sequence)
    entries = []
    for i in unique_resources(listed):
        entry: dict[str, Any] = {
            "fullUrl": f"{prefix}{i.resource_type}/{i.resource_id}",
            "resource": outgoing(i.resource),
            "request": {"method": "PUT", "url": f"{i.resource_type}/{i.resource_id}"},
        }
        given = numbers.get((i.resource_type, i.resource_id))
        if given:
            entry["extension"] = [{"url": SEQUENCE_URL, "valueInteger": n} for n in sorted(given)]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}
