"""The seam between the patient index and its users (routing by care, access control,
$everything): which consortium person a Patient record belongs to, and which records a
person has.

    person_of(session, patient_id) -> person id
    records_of(session, person_id) -> the Patient ids linked to that person

Until the consortium patient index exists, each Patient record is its own person (its id is
the person id). The index replaces these two functions' bodies, not their signatures, so
callers written against them need no change.
"""

from __future__ import annotations

from sqlalchemy.orm import Session


def person_of(session: Session, patient_id: str) -> str:
    """The consortium person a Patient record belongs to."""
    return patient_id


def records_of(session: Session, person_id: str) -> list[str]:
    """The Patient record ids linked to a consortium person (the person's own first)."""
    return [person_id]
