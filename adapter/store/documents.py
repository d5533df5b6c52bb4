"""The document Bundle stored for a Composition (FHIR R4 documents: a Bundle of type
``document`` whose first entry is the Composition).

A document mapping stores the Composition and its Bundle from the same message, so the
Bundle is found through the message that wrote a version of the Composition (indexed
lookups, no scan of every Bundle); it is served only while its first entry is still that
Composition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from adapter.store.models import Resource, ResourceVersion

_r = Resource.__table__
_v = ResourceVersion.__table__


def stored_document(session: Session, composition_id: str) -> dict[str, Any] | None:
    """The current stored document Bundle of this Composition, newest first, or None."""
    # the messages that wrote a version of the Composition: its current one (the resource
    # row) and those it superseded (the history rows; decision 0075)
    messages = union_all(
        *(
            select(t.c.message_id).where(
                t.c.resource_type == "Composition",
                t.c.id == composition_id,
                t.c.message_id.is_not(None),
            )
            for t in (_v, _r)
        )
    )
    bundle_ids = union_all(
        *(
            select(t.c.id).where(t.c.resource_type == "Bundle", t.c.message_id.in_(messages))
            for t in (_v, _r)
        )
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
