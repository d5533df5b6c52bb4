"""Patient/$everything: the resources of one person's Patient records (their compartment).

A resource belongs to a Patient record when its ``patient_key`` (the Patient it is about,
set when it is written) is that record; the Patient resources themselves carry their own
key. ``start`` / ``end`` keep resources whose care date (the type's clinical date below)
meets the range, and those that have no care date at all (FHIR R4 patient-operation-
everything: the range is about care dates, not record currency). ``_since`` keeps the
resources written at or after an instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, or_, select
from sqlalchemy.orm import Session

from adapter.store.index_params import kind_is, named_rows, param_ids
from adapter.store.models import Resource, SearchIndex, SearchParam

_r = Resource.__table__
_si = SearchIndex.__table__

# the search parameter holding each type's care date (when the care happened)
CARE_DATE: dict[str, str] = {
    "Encounter": "date",
    "Observation": "date",
    "DiagnosticReport": "date",
    "Condition": "onset-date",
    "ServiceRequest": "authored",
    "MedicationRequest": "authoredon",
    "MedicationStatement": "effective",
    "Specimen": "collected",
    "Composition": "date",
    "DocumentReference": "date",
    "Task": "authored-on",
    "Provenance": "recorded",
}


@dataclass(frozen=True, slots=True)
class EverythingQuery:
    patient_keys: Sequence[str]  # "Patient/<id>" of each record of the person
    types: Sequence[str] | None = None  # _type; None: every type
    since: datetime | None = None
    care: tuple[datetime, datetime] | None = None  # [start, end) in UTC
    count: int = 50
    offset: int = 0


def everything_page(session: Session, query: EverythingQuery) -> tuple[int, list[dict[str, Any]]]:
    """The number of resources and one page of bodies: the Patient records first, then by
    type and id (a stable order for paging)."""
    where: list[ColumnElement[bool]] = [
        _r.c.patient_key.in_(list(query.patient_keys)),
        _r.c.deleted.is_(False),
    ]
    if query.types is not None:
        where.append(_r.c.resource_type.in_(list(query.types)))
    if query.since is not None:
        where.append(_r.c.last_updated >= query.since)
    if query.care is not None:
        where.append(_care_date_meets(*query.care))
    total = session.execute(select(func.count()).select_from(_r).where(*where)).scalar_one()
    if query.count <= 0 or query.offset >= total:
        return total, []
    patients_first = case((_r.c.resource_type == "Patient", 0), else_=1)
    rows = session.execute(
        select(_r.c.body)
        .where(*where)
        .order_by(patients_first, _r.c.resource_type, _r.c.id)
        .limit(query.count)
        .offset(query.offset)
    ).scalars()
    return total, list(rows)


def _care_date_meets(start: datetime, end: datetime) -> ColumnElement[bool]:
    """No care date, or one whose range overlaps [start, end)."""

    def dated(*extra: ColumnElement[bool]) -> ColumnElement[bool]:
        sp = SearchParam.__table__
        cases = [
            and_(sp.c.resource_type == rtype, sp.c.param.in_(named_rows(rtype, param)))
            for rtype, param in CARE_DATE.items()
        ]
        return exists(
            select(_si.c.resource_key).where(
                _si.c.param_id.in_(param_ids(None, None, "date").where(or_(*cases))),
                kind_is(_si, "date"),
                _si.c.resource_key == _r.c.resource_key,
                *extra,
            )
        )

    overlaps = dated(_si.c.value_date_start < end, _si.c.value_date_end > start)
    return or_(not_(dated()), overlaps)


def referenced_keys(bodies: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(type, id) of the resources the bodies refer to with relative references
    (practitioners, organisations, the encounter ...), in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for body in bodies:
        for ref in _references(body):
            parts = ref.split("/")
            if len(parts) == 2 and parts[0][:1].isupper() and parts[1]:
                seen.setdefault((parts[0], parts[1]), None)
    return list(seen)


def _references(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                found.append(ref)
            stack.extend(v for k, v in item.items() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(item)
    return found


def read_many(session: Session, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The current bodies of these resources (unknown and deleted ones left out), in order."""
    if not keys:
        return []
    found: dict[tuple[str, str], dict[str, Any]] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        rows = session.execute(
            select(_r.c.id, _r.c.body).where(
                _r.c.resource_type == rtype, _r.c.id.in_(ids), _r.c.deleted.is_(False)
            )
        )
        for row in rows:
            found[(rtype, row.id)] = row.body
    return [found[key] for key in keys if key in found]
