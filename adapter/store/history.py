"""History of resources: one resource, one type or the whole server, newest first.

``_since``: versions written at or after an instant. ``_at``: versions that were the
current one at some moment of a range (FHIR R4 http.html#history): a version is current
from its own ``last_updated`` until the next version's, so it qualifies when it was
written before the range ends and its successor (if any) came after the range started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from adapter.store.models import Resource, ResourceVersion
from adapter.store.types import CompressedJSON
from adapter.store.visibility import Visibility, visible_key


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    resource_type: str | None = None  # None: every type (system history)
    resource_id: str | None = None  # None: every resource of the type
    since: datetime | None = None
    at: tuple[datetime, datetime] | None = None  # half-open UTC range
    count: int = 50
    offset: int = 0


def read_history_page(
    session: Session, query: HistoryQuery, *, scope: Visibility | None = None
) -> tuple[int, list[Row[Any]]]:
    """The number of versions that match and one page of them, newest first (ties in a
    fixed order so pages never overlap); only versions of resources ``scope`` may read.
    Rows with the columns of ``resource_version``, ``body`` always filled."""
    v = ResourceVersion
    where: list[ColumnElement[bool]] = []
    if scope is not None:
        where.append(visible_key(scope, v.resource_type, v.id))
    if query.resource_type is not None:
        where.append(v.resource_type == query.resource_type)
    if query.resource_id is not None:
        where.append(v.id == query.resource_id)
    if query.since is not None:
        where.append(v.last_updated >= query.since)
    if query.at is not None:
        start, end = query.at
        following = aliased(ResourceVersion)
        successor = (
            select(following.last_updated)
            .where(
                following.resource_type == v.resource_type,
                following.id == v.id,
                following.version_id == v.version_id + 1,
            )
            .scalar_subquery()
        )
        where.append(and_(v.last_updated < end, or_(successor.is_(None), successor > start)))
    total = session.execute(select(func.count()).select_from(v).where(*where)).scalar_one()
    if query.count <= 0 or query.offset >= total:
        return total, []
    r = Resource
    current = and_(r.resource_type == v.resource_type, r.id == v.id, r.version_id == v.version_id)
    rows = session.execute(
        select(
            v.resource_type,
            v.id,
            v.version_id,
            v.last_updated,
            v.deleted,
            v.message_id,
            # the current version's body is only in the resource row (decision 0042)
            func.coalesce(v.body, r.body, type_=CompressedJSON()).label("body"),
        )
        .join(r, current, isouter=True)
        .where(*where)
        .order_by(v.last_updated.desc(), v.resource_type, v.id, v.version_id.desc())
        .limit(query.count)
        .offset(query.offset)
    ).all()
    return total, list(rows)
