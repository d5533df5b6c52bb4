"""Searching the audit log: the AuditEvent search parameters on audit_record and its links.

patient, entity      a reference the record names (``Patient/x`` or ``x``; an entity
                     without ``/_history/`` matches every version)
agent                who: the actor (``source:lis``, ``worker:...``) or the client
date                 when, with the FHIR prefixes eq (default), ge, gt, le, lt, ne-less
type                 the AuditEvent.type code (``rest``, DCM ``110106``, ``110107`` ...)
subtype, action      the adapter's action (``fhir.read``) / AuditEvent.action (C R E)
outcome              0 success, 4 minor failure (warning), 8 serious failure
correlation-id       the X-Request-Id / correlation id of a message's every record
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from adapter.audit.resource import KINDS, OUTCOMES, type_code
from adapter.errors import InvalidRequestError
from adapter.store.audit_log import AuditRecord, linked

PARAMETERS = (
    "patient",
    "entity",
    "agent",
    "date",
    "type",
    "subtype",
    "action",
    "outcome",
    "correlation-id",
)
_ACTIONS = (*KINDS, "audit.read", "audit.verified", "audit.checkpoint", "audit.refused")
_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _bad(name: str, text: str) -> InvalidRequestError:
    return InvalidRequestError(f"{name}: {text}", location=name)


def _link(kind: str, reference: str) -> Any:
    """The records naming ``reference``; an entity without ``/_history/``: every version of
    it too. Through audit_link's key on SQLite, the GIN index of ``audit_record.links`` on
    PostgreSQL (``linked``, decisions 0072, 0074, 0119), never a walk over every record."""
    every_version = kind == "entity" and "/_history/" not in reference
    return linked(kind, [reference], every_version=every_version)


def _date(name: str, value: str) -> Any:
    prefix, text = (value[:2], value[2:]) if value[:2] in _PREFIXES else ("eq", value)
    try:
        if len(text) == 10:  # a day: its whole range
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            start = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            end = start + timedelta(milliseconds=1)
    except ValueError:
        raise _bad(name, f"{value[:40]!r} is not a date (YYYY-MM-DD or an instant)") from None
    column = AuditRecord.recorded
    return {
        "eq": and_(column >= start, column < end),
        "ge": column >= start,
        "gt": column >= end,
        "le": column < end,
        "lt": column < start,
    }[prefix]


def criteria(params: Sequence[tuple[str, str]]) -> list[Any]:
    where: list[Any] = []
    for name, value in params:
        if name.startswith("_"):
            continue
        values = [v for v in value.split(",") if v]
        if name in ("patient", "entity"):
            refs = [v if "/" in v or name == "entity" else f"Patient/{v}" for v in values]
            where.append(or_(*(_link(name, r) for r in refs)))
        elif name == "agent":
            where.append(or_(AuditRecord.actor.in_(values), AuditRecord.client.in_(values)))
        elif name == "date":
            where.append(_date(name, value))
        elif name == "type":
            codes = {v.split("|")[-1] for v in values}
            where.append(AuditRecord.action.in_([a for a in _ACTIONS if type_code(a) in codes]))
        elif name == "subtype":
            codes = {v.split("|")[-1] for v in values}
            where.append(AuditRecord.action.in_(codes))
        elif name == "action":
            letters = set(values)
            where.append(
                AuditRecord.action.in_([a for a, kind in KINDS.items() if kind[1] in letters])
            )
        elif name == "outcome":
            names = [n for n, code in OUTCOMES.items() if code in values]
            where.append(AuditRecord.outcome.in_(names))
        elif name == "correlation-id":
            where.append(AuditRecord.correlation_id.in_(values))
        else:
            raise _bad(name, f"not a search parameter of AuditEvent here ({', '.join(PARAMETERS)})")
    return where


def search_records(
    session: Session, params: Sequence[tuple[str, str]], *, count: int, offset: int
) -> tuple[int, list[AuditRecord]]:
    """Total and one page of matching records, newest first."""
    where = criteria(params)
    total = session.execute(
        select(func.count()).select_from(AuditRecord).where(*where)
    ).scalar_one()
    page = (
        session.execute(
            select(AuditRecord)
            .where(*where)
            .order_by(AuditRecord.seq.desc())
            .limit(count)
            .offset(offset)
        )
        .scalars()
        .all()
    )
    return total, list(page)
