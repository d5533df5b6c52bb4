"""Which stored resources a facility may read (issue 11 section 2, docs/security.md): those
of persons in its care, its own records about no person, and the consortium's directory.

A condition on the ``resource`` table (or an alias), so that a search's matches, totals
and pages, history and includes are limited in the database, never after paging:

* the directory types (Organization, Practitioner, PractitionerRole, CodeSystem,
  OperationDefinition): always;
* a resource about a patient (``patient_key``): when the facility has an open, positive
  care relationship (activity, referral, registration, grant) with that patient's
  consortium person and no open revocation; every record linked to the person counts,
  whichever id the relationship was noted under (as adapter.store.care.caring reads it);
* a resource about no patient: when it was made from the facility's own messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, FromClause, and_, exists, literal, or_, select, union
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from adapter.store.care import POSITIVE
from adapter.store.facilities import key_of
from adapter.store.id_forms import key_of_record
from adapter.store.identity_tables import IdentityRecord
from adapter.store.models import CareRelationship, Resource

DIRECTORY_TYPES = (
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "CodeSystem",
    "OperationDefinition",
)

_c = CareRelationship.__table__
_i = IdentityRecord.__table__
_r = Resource.__table__


@dataclass(frozen=True, slots=True)
class Visibility:
    """What one reader may see: its facility's care, at a moment (now)."""

    facility: str
    at: datetime


def _noted(scope: Visibility, positive: bool) -> Select[tuple[str]]:
    """Ids care rows of the facility are open under (positive ones, or revocations)."""
    source = _c.c.source.in_(POSITIVE) if positive else _c.c.source == "revocation"
    return select(_c.c.person_id).where(
        _c.c.facility_id == scope.facility,
        source,
        _c.c.start_at <= scope.at,
        or_(_c.c.end_at.is_(None), _c.c.end_at > scope.at),
    )


def _patient_keys(ids: Select[tuple[str]]) -> Select[tuple[str]]:
    """The patient key (as stored: ``key_of_record``) of every record of the persons
    behind ``ids`` (each id is a person or a record of one; an id the index does not know
    is its own person)."""
    noted = ids.subquery()
    persons = union(
        select(noted.c.person_id.label("person")),
        select(_i.c.person_id).where(_i.c.patient_id.in_(select(noted.c.person_id))),
    ).subquery()
    records = union(
        select(persons.c.person.label("record")),
        select(_i.c.patient_id).where(_i.c.person_id.in_(select(persons.c.person))),
    ).subquery()
    return select(key_of_record(records.c.record))


def visible(scope: Visibility, r: FromClause) -> ColumnElement[bool]:
    """The condition on resource table ``r`` (or an alias) that a row is readable."""
    cared = and_(
        r.c.patient_key.in_(_patient_keys(_noted(scope, positive=True))),
        r.c.patient_key.not_in(_patient_keys(_noted(scope, positive=False))),
    )
    return or_(
        r.c.resource_type.in_(DIRECTORY_TYPES),
        and_(r.c.patient_key.is_not(None), cared),
        and_(r.c.patient_key.is_(None), r.c.facility_key == key_of(scope.facility)),
    )


def visible_key(
    scope: Visibility, type_column: ColumnElement[str], id_column: ColumnElement[str]
) -> ColumnElement[bool]:
    """The condition that the resource named by two columns (of a version row) is readable
    now: a version is readable when its resource is."""
    r = _r.alias()
    return exists(
        select(literal(1)).where(
            r.c.resource_type == type_column, r.c.id == id_column, visible(scope, r)
        )
    )


def is_visible(session: Session, scope: Visibility, resource_type: str, resource_id: str) -> bool:
    query = select(literal(1)).where(
        _r.c.resource_type == resource_type, _r.c.id == resource_id, visible(scope, _r)
    )
    return session.execute(query).first() is not None
