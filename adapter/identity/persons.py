"""The seam between the patient index and its users (routing by care, access control,
$everything): which consortium person a Patient record belongs to, and which records a
person has.

    person_of(session, patient_id) -> person id
    records_of(session, person_id) -> the Patient ids linked to that person
    keys_of(session, patient_or_person_id) -> every id the person's care is kept under

Both read the index in the caller's transaction (the message's, when the pipeline routes),
so a record linked earlier in the same transaction is seen. A Patient id the index does not
know (not a Patient record, or stored before the index existed) is its own person.
"""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, select, union
from sqlalchemy.orm import Session

from adapter.store.id_forms import IndexId
from adapter.store.identity_tables import IdentityMerge, IdentityRecord

# the ids bound as the index stores them (16 bytes on PostgreSQL, decision 0123)
_ID = IndexId(64)


def person_of(session: Session, patient_id: str) -> str:
    """The consortium person a Patient record belongs to (a person id gives itself)."""
    person = session.scalar(
        select(IdentityRecord.person_id).where(IdentityRecord.patient_id == patient_id)
    )
    return person or patient_id


def records_of(session: Session, person_id: str) -> list[str]:
    """The Patient record ids linked to a consortium person, oldest link first; a record
    id the index does not know as a person gives itself."""
    found = list(session.scalars(RECORDS, {"person": person_id}))
    return found or [person_id]


def _records_statement() -> Select[tuple[str]]:
    """records_of's statement, built once (parameter ``person``): a Core select of the
    table, so that a caller on the session's connection skips the ORM's execution path."""
    record = IdentityRecord.__table__
    return (
        select(record.c.patient_id)
        .where(record.c.person_id == bindparam("person", type_=_ID))
        .order_by(record.c.created_at, record.c.patient_id)
    )


RECORDS = _records_statement()


def keys_of(session: Session, patient_id: str) -> set[str]:
    """Every id what is kept about a person may be kept under (care relationships): the id
    given, its person, the person's records and the persons merged into it, while the
    merge stands. Facts a message shows are kept under its Patient record, so a merge
    brings them along and an unmerge takes them back with the record; a grant or a
    revocation is kept under the person it was given for."""
    return set(session.scalars(KEYS, {"id": patient_id}))


def _keys_statement() -> Select[tuple[str]]:
    """keys_of as one statement (a recursive query: merges of merges), parameter ``id``;
    also a subquery (``person_id IN (KEYS)``: the person's care rows in one statement)."""
    given = bindparam("id", type_=_ID)
    record, merge = IdentityRecord.__table__, IdentityMerge.__table__
    person = func.coalesce(
        select(record.c.person_id).where(record.c.patient_id == given).scalar_subquery(), given
    )
    persons = select(person.label("id")).cte("persons", recursive=True)
    persons = persons.union(
        select(merge.c.merged_id).where(
            merge.c.survivor_id == persons.c.id, merge.c.undone_at.is_(None)
        )
    )
    every = union(
        select(given.label("id")),
        select(persons.c.id),
        select(record.c.patient_id).where(record.c.person_id.in_(select(persons.c.id))),
    ).subquery()
    return select(every.c.id)


KEYS = _keys_statement()
