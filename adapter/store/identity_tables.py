"""Tables of the consortium patient index (adapter/identity/index/, docs/patient-index.md).

identity_record    one row per Patient record a facility sent: the consortium person it is
                   linked to, how (auto / manual), under which rule version, score, evidence,
                   and the features compared (JSON)
identity_key       blocking keys of each record (hashed: national IDs and card numbers are not
                   copied into the index in clear)
identity_history   every link, relink, merge, unmerge and review decision: who, why, rule version
identity_review    the review queue: one item per pair of records, open -> claimed -> resolved,
                   ``version`` for optimistic locking
identity_block     pairs a reviewer or an unmerge said are two people: never linked again
identity_merge     a merge of two persons with the links as they were (what unmerge restores)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from adapter.store.id_forms import IndexId
from adapter.store.models import Base
from adapter.store.types import BigId, Digest, FeaturesJSON, JSONText, UTCDateTime, UTCMicros

_ID = 64
_ACTOR = 128

REVIEW_STATES = ("open", "claimed", "resolved")


class IdentityRecord(Base):
    __tablename__ = "identity_record"

    patient_id: Mapped[str] = mapped_column(IndexId(_ID), primary_key=True)
    person_id: Mapped[str] = mapped_column(IndexId(_ID), index=True)
    facility_id: Mapped[str] = mapped_column(String(_ID))
    link_kind: Mapped[str] = mapped_column(String(16))  # auto | manual
    rule_version: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[Any] = mapped_column(JSONText)
    # a zstd frame with a dictionary of their own, a quarter of the text (decision 0082)
    features: Mapped[Any] = mapped_column(FeaturesJSON)
    # SQLite: integer microseconds, 8 bytes instead of 26 characters (decision 0082)
    created_at: Mapped[datetime] = mapped_column(UTCMicros)
    updated_at: Mapped[datetime] = mapped_column(UTCMicros)


class IdentityKey(Base):
    """SQLite: ``WITHOUT ROWID``, the key is the table (no second copy of every key in an
    autoindex); ``key_hash`` is read as hex and stored as its 32 bytes (decision 0082)."""

    __tablename__ = "identity_key"
    __table_args__ = ({"sqlite_with_rowid": False},)

    key_hash: Mapped[str] = mapped_column(Digest, primary_key=True)
    patient_id: Mapped[str] = mapped_column(IndexId(_ID), primary_key=True, index=True)


class IdentityHistory(Base):
    __tablename__ = "identity_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str | None] = mapped_column(IndexId(_ID), nullable=True, index=True)
    # no index (0045): the one reader by person (review.link_history) asks person_id OR
    # previous_person_id, which an index on person_id alone never serves (decision 0115)
    person_id: Mapped[str | None] = mapped_column(IndexId(_ID), nullable=True)
    previous_person_id: Mapped[str | None] = mapped_column(IndexId(_ID), nullable=True)
    actor: Mapped[str] = mapped_column(String(_ACTOR))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[Any] = mapped_column(JSONText, nullable=True)


class IdentityReview(Base):
    __tablename__ = "identity_review"
    __table_args__ = (Index("ix_identity_review_pair", "patient_id", "other_id", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(IndexId(_ID))  # the smaller id of the pair
    other_id: Mapped[str] = mapped_column(IndexId(_ID))
    reason: Mapped[str] = mapped_column(String(32))  # possible-match | id-conflict | twin-guard
    state: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(_ACTOR), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(_ACTOR), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)  # match | no-match
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule_version: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdentityBlock(Base):
    __tablename__ = "identity_block"

    patient_id: Mapped[str] = mapped_column(IndexId(_ID), primary_key=True)  # smaller id
    other_id: Mapped[str] = mapped_column(IndexId(_ID), primary_key=True)
    actor: Mapped[str] = mapped_column(String(_ACTOR))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdentityMerge(Base):
    __tablename__ = "identity_merge"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[str] = mapped_column(IndexId(_ID), index=True)
    merged_id: Mapped[str] = mapped_column(IndexId(_ID), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(_ACTOR))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    snapshot: Mapped[Any] = mapped_column(JSONText)  # every record of both persons, as it was
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    undone_by: Mapped[str | None] = mapped_column(String(_ACTOR), nullable=True)
