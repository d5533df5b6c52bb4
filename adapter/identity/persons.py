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

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.identity_tables import IdentityMerge, IdentityRecord


def person_of(session: Session, patient_id: str) -> str:
    """The consortium person a Patient record belongs to (a person id gives itself)."""
    person = session.scalar(
        select(IdentityRecord.person_id).where(IdentityRecord.patient_id == patient_id)
    )
    return person or patient_id


def records_of(session: Session, person_id: str) -> list[str]:
    """The Patient record ids linked to a consortium person, oldest link first; a record
    id the index does not know as a person gives itself."""
    found = list(
        session.scalars(
            select(IdentityRecord.patient_id)
            .where(IdentityRecord.person_id == person_id)
            .order_by(IdentityRecord.created_at, IdentityRecord.patient_id)
        )
    )
    return found or [person_id]


def keys_of(session: Session, patient_id: str) -> set[str]:
    """Every id what is kept about a person may be kept under (care relationships): the id
    given, its person, the person's records and the persons merged into it, while the
    merge stands. Facts a message shows are kept under its Patient record, so a merge
    brings them along and an unmerge takes them back with the record; a grant or a
    revocation is kept under the person it was given for."""
    person = person_of(session, patient_id)
    keys = {patient_id, person}
    persons, todo = {person}, [person]
    while todo:  # merges of merges
        absorbed = session.scalars(
            select(IdentityMerge.merged_id).where(
                IdentityMerge.survivor_id.in_(todo), IdentityMerge.undone_at.is_(None)
            )
        )
        todo = [p for p in absorbed if p not in persons]
        persons.update(todo)
    for each in persons:
        keys.add(each)
        keys.update(records_of(session, each))
    return keys
