"""The document Bundle stored for a Composition (FHIR R4 documents: a Bundle of type
``document`` whose first entry is the Composition).

A document mapping stores the Composition and its Bundle from the same message, so the
Bundle is found through the message that wrote a version of the Composition (one indexed
lookup, no scan of every Bundle); it is served only while its first entry is still that
Composition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import Resource, ResourceVersion

_r = Resource.__table__
_v = ResourceVersion.__table__


def stored_document(session: Session, composition_id: str) -> dict[str, Any] | None:
    """The current stored document Bundle of this Composition, newest first, or None."""
    messages = select(_v.c.message_id).where(
        _v.c.resource_type == "Composition",
        _v.c.id == composition_id,
        _v.c.message_id.is_not(None),
    )
    bundle_ids = select(_v.c.id).where(
        _v.c.resource_type == "Bundle", _v.c.message_id.in_(messages)
    )
    rows = session.execute(
        select(_r.c.body)
        .where(_r.c.resource_type == "Bundle", _r.c.id.in_(bundle_ids), _r.c.deleted.is_(False))
        .order_by(_r.c.last_updated.desc(), _r.c.id)
    ).scalars()
    for body in rows:
        entries = body.get("entry") or []
        first = entries[0].get("resource") if entries and isinstance(entries[0], dict) else None
        if (
            body.get("type") == "document"
            and isinstance(first, dict)
            and first.get("resourceType") == "Composition"
            and first.get("id") == composition_id
        ):
            return body
    return None
