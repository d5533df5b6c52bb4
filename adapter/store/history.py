"""History of resources: one resource, one type or the whole server, newest first.

A resource's versions are its resource row (the current version) and its
``resource_version`` rows (the versions it superseded, each with its body): the current
version has no history row (decision 0075), so every read here is a UNION ALL of the two.

``_since``: versions written at or after an instant. ``_at``: versions that were the
current one at some moment of a range (FHIR R4 http.html#history): a version is current
from its own ``last_updated`` until the next version's, so it qualifies when it was
written before the range ends and its successor (if any) came after the range started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Table, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from adapter.store.models import Resource, ResourceVersion
from adapter.store.visibility import Visibility, visible_key

_r = Resource.__table__
_v = ResourceVersion.__table__


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
    arms = [_arm(_v, query, scope, current=False), _arm(_r, query, scope, current=True)]
    total = sum(
        session.execute(select(func.count()).select_from(arm.subquery())).scalar_one()
        for arm in arms
    )
    if query.count <= 0 or query.offset >= total:
        return total, []
    # each arm in history order, up to the end of the page (an index walk where one
    # serves), then the page of the two together
    wanted = query.offset + query.count
    ranked = union_all(
        *(
            select(_ordered(arm, table).limit(wanted).subquery())
            for arm, table in zip(arms, (_v, _r), strict=True)
        )
    ).subquery("versions")
    rows = session.execute(
        select(ranked)
        .order_by(
            ranked.c.last_updated.desc(),
            ranked.c.resource_type,
            ranked.c.id,
            ranked.c.version_id.desc(),
        )
        .limit(query.count)
        .offset(query.offset)
    ).all()
    return total, list(rows)


def _ordered(arm: Select[Any], table: Table) -> Select[Any]:
    return arm.order_by(
        table.c.last_updated.desc(), table.c.resource_type, table.c.id, table.c.version_id.desc()
    )


def _arm(
    table: Table, query: HistoryQuery, scope: Visibility | None, *, current: bool
) -> Select[Any]:
    """The versions of one table that match: the history rows, or (``current``) the
    resource rows as their current versions (a placeholder row, version 0, is none)."""
    where: list[ColumnElement[bool]] = []
    if current:
        where.append(table.c.version_id > 0)
    if scope is not None:
        where.append(visible_key(scope, table.c.resource_type, table.c.id))
    if query.resource_type is not None:
        where.append(table.c.resource_type == query.resource_type)
    if query.resource_id is not None:
        where.append(table.c.id == query.resource_id)
    if query.since is not None:
        where.append(table.c.last_updated >= query.since)
    if query.at is not None:
        start, end = query.at
        written = table.c.last_updated < end
        if current:  # a current version has no successor
            where.append(written)
        else:
            where.append(and_(written, or_(_successor(table).is_(None), _successor(table) > start)))
    return select(
        table.c.resource_type,
        table.c.id,
        table.c.version_id,
        table.c.last_updated,
        table.c.deleted,
        table.c.message_id,
        table.c.body,
    ).where(*where)


def _successor(history: Table) -> Any:
    """When the version after a history row's was written: another history row, or the
    resource row when that one is the current version."""
    following = _v.alias("following")
    after = history.c.version_id + 1
    return func.coalesce(
        select(following.c.last_updated)
        .where(
            following.c.resource_type == history.c.resource_type,
            following.c.id == history.c.id,
            following.c.version_id == after,
        )
        .scalar_subquery(),
        select(_r.c.last_updated)
        .where(
            _r.c.resource_type == history.c.resource_type,
            _r.c.id == history.c.id,
            _r.c.version_id == after,
        )
        .scalar_subquery(),
    )
