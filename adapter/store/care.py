"""The ``care_relationship`` table: which facility cares for which consortium person,
since when, until when, and why. What the rows mean for routing is decided in
adapter.routing.care; the pipeline writes them in the message's transaction, the API and
the ``adapter care`` commands read them and write grants, revocations and registrations.

Functions take a Session and never commit. A relationship is *open* at ``t`` when
``start_at <= t`` and (``end_at`` is empty or later than ``t``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    LargeBinary,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from adapter.store.bound import bind_of
from adapter.store.driver_select import execute_rows
from adapter.store.models import CareRelationship, Resource

_c = CareRelationship.__table__
_r = Resource.__table__
POSITIVE = ("activity", "referral", "registered", "grant")


@dataclass(frozen=True, slots=True)
class CareRow:
    """One ``care_relationship`` row."""

    id: int
    person_id: str
    facility_id: str
    source: str
    ref: str
    start_at: datetime
    end_at: datetime | None
    actor: str | None
    note: str | None
    detail: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> CareRow:
        """From a row with the fields as attributes (SQLAlchemy's or the driver's)."""
        return cls(**{name: getattr(row, name) for name in _FIELDS})

    def open_at(self, moment: datetime) -> bool:
        return self.start_at <= moment and (self.end_at is None or self.end_at > moment)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person": self.person_id,
            "facility": self.facility_id,
            "source": self.source,
            "ref": self.ref or None,
            "start": self.start_at.isoformat(),
            "end": self.end_at.isoformat() if self.end_at else None,
            "actor": self.actor,
            "note": self.note,
            "detail": self.detail,
        }


_FIELDS = tuple(f.name for f in fields(CareRow))


def _open(moment: datetime) -> Any:
    return and_(_c.c.start_at <= moment, or_(_c.c.end_at.is_(None), _c.c.end_at > moment))


def _insert_new(session: Session, values: dict[str, Any]) -> bool:
    """Insert unless the key (person, facility, source, ref) exists; True when inserted.
    Told by the returned id: psycopg's rowcount said 1 for a row not inserted, so on
    PostgreSQL an existing row was never updated (decision 0048)."""
    wrote(session)
    dialect = bind_of(session).dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(_c).values(**values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(_c).values(**values).on_conflict_do_nothing()
    return session.execute(statement.returning(_c.c.id)).first() is not None


def _values(
    person: str,
    facility: str,
    source: str,
    ref: str,
    start: datetime,
    end: datetime | None,
    now: datetime,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "person_id": person,
        "facility_id": facility,
        "source": source,
        "ref": ref,
        "start_at": start,
        "end_at": end,
        "created_at": now,
        "updated_at": now,
        **extra,
    }


def _key(person: str, facility: str, source: str, ref: str) -> Any:
    return and_(
        _c.c.person_id == person,
        _c.c.facility_id == facility,
        _c.c.source == source,
        _c.c.ref == ref,
    )


# -- written by the pipeline ------------------------------------------------------------------
def note_activity(
    session: Session,
    person: str,
    facility: str,
    *,
    at: datetime,
    until: datetime,
    detail: str,
) -> CareRow:
    """The facility sent or ordered something for the person at ``at``: its one activity
    row runs until ``until`` (a lapsed one starts again). Returns the row as it now is (one
    statement, an upsert: decision 0048), run on the session's connection after a flush:
    the statement is built once, the ORM's execution path is skipped (decision 0077)."""
    values = _values(person, facility, "activity", "", at, until, at, detail=detail)
    session.flush()
    statement = _NOTE_ACTIVITY[bind_of(session).dialect.name == "postgresql"]
    # flushed above: no autoflush; SQLite: on the driver (decision 0106)
    (row,) = execute_rows(session, statement, values, flush=False)
    noted = CareRow.of(row)
    wrote(session, noted)
    return noted


def _note_activity(insert: Any, values: dict[str, Any] | None = None) -> Any:
    """The activity upsert (built once per dialect): a new row, or the existing one's end
    moved to the later ``until`` and, when it had lapsed, its start to ``at``; the row as it
    now is returned. ``values``: the columns' bound parameters (``open_and_noted_query``:
    given as a SELECT, so that the read's parameter ``id`` is not taken for the column)."""
    new = insert(_c)
    if values is not None:
        given = select(*(v.label(k) for k, v in values.items()))
        new = new.from_select(list(values), given)
    return new.on_conflict_do_update(
        index_elements=[_c.c.person_id, _c.c.facility_id, _c.c.source, _c.c.ref],
        set_={
            "start_at": case(
                (_c.c.end_at <= new.excluded.start_at, new.excluded.start_at),
                else_=_c.c.start_at,
            ),
            "end_at": case(
                (_c.c.end_at < new.excluded.end_at, new.excluded.end_at), else_=_c.c.end_at
            ),
            "detail": new.excluded.detail,
            "updated_at": new.excluded.updated_at,
        },
    ).returning(*_c.c)


_NOTE_ACTIVITY = {False: _note_activity(sqlite.insert), True: _note_activity(postgresql.insert)}
# the columns ``note_activity`` gives
_ACTIVITY = (
    "person_id",
    "facility_id",
    "source",
    "ref",
    "start_at",
    "end_at",
    "created_at",
    "updated_at",
    "detail",
)


def open_and_noted_query(opened: Select[Any]) -> Any:
    """PostgreSQL: ``opened`` (``open_rows_query(..., on_postgresql=True)``) and the
    activity upsert of ``note_activity`` (its values as parameters ``v_<column>``) in one
    statement, each row with ``noted``: false for an open row as it was before the
    statement (every part of one statement reads the same snapshot: the upsert's write is
    not seen by the read), true for the upserted row as it now is. Build it once."""
    given = {name: bindparam(f"v_{name}", type_=_c.c[name].type) for name in _ACTIVITY}
    noted = _note_activity(postgresql.insert, given).cte("noted")
    before = opened.subquery("before")
    return union_all(
        select(*before.c, literal(False).label("noted")),
        select(*noted.c, literal(True).label("noted")),
    )


def open_and_note_activity(
    session: Session,
    statement: Any,
    params: dict[str, Any],
    person: str,
    facility: str,
    *,
    at: datetime,
    until: datetime,
    detail: str,
) -> tuple[list[CareRow], CareRow]:
    """``read_rows`` of ``statement`` (``open_and_noted_query``'s, with its read's
    ``params``) and ``note_activity``, one round trip: (the open rows as they were before,
    oldest first; the upserted row as it now is)."""
    values = _values(person, facility, "activity", "", at, until, at, detail=detail)
    params = {**params, **{f"v_{name}": values[name] for name in _ACTIVITY}}
    session.flush()
    found = execute_rows(session, statement, params, flush=False)
    before = sorted((CareRow.of(r) for r in found if not r.noted), key=lambda r: r.id)
    (row,) = [CareRow.of(r) for r in found if r.noted]
    return before, row


def note_referral(
    session: Session,
    person: str,
    facility: str,
    ref: str,
    *,
    at: datetime,
    end: datetime | None,
    detail: str,
) -> None:
    """The facility is a party of referral ``ref``; ``end`` set once its loop closed."""
    if _insert_new(session, _values(person, facility, "referral", ref, at, end, at, detail=detail)):
        return
    if end is not None:  # closed now: the first close counts
        wrote(session)
        session.execute(
            update(_c)
            .where(_key(person, facility, "referral", ref), _c.c.end_at.is_(None))
            .values(end_at=end, detail=detail, updated_at=at)
        )


def register(
    session: Session,
    person: str,
    facility: str,
    *,
    at: datetime,
    detail: str,
    actor: str | None = None,
    note: str | None = None,
    also: Iterable[str] = (),
) -> None:
    """The person's registered primary facility is ``facility`` from ``at`` (签约 / 健康档案):
    a registration elsewhere that is still open ends, under ``person`` or any id in
    ``also`` (the person's other ids: adapter.identity.keys_of)."""
    wrote(session)
    session.execute(
        update(_c)
        .where(
            _c.c.person_id.in_(sorted({person, *also})),
            _c.c.source == "registered",
            _c.c.facility_id != facility,
            _open(at),
        )
        .values(end_at=at, updated_at=at)
    )
    values = _values(
        person, facility, "registered", "", at, None, at, detail=detail, actor=actor, note=note
    )
    if not _insert_new(session, values):
        wrote(session)
        session.execute(
            update(_c)
            .where(_key(person, facility, "registered", ""), _c.c.end_at.is_not(None))
            .values(start_at=at, end_at=None, detail=detail, actor=actor, note=note, updated_at=at)
        )


def close_referral(session: Session, ref: str, *, at: datetime, end: datetime, detail: str) -> int:
    """The loop of referral ``ref`` closed at ``at``: its parties' rows end at ``end``."""
    wrote(session)
    result = session.execute(
        update(_c)
        .where(_c.c.source == "referral", _c.c.ref == ref, _c.c.end_at.is_(None))
        .values(end_at=end, detail=detail, updated_at=at)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- written through the API --------------------------------------------------------------------
def grant(
    session: Session,
    person: str,
    facility: str,
    *,
    at: datetime,
    until: datetime | None,
    actor: str,
    note: str,
) -> CareRow:
    """An explicit grant (who, why): ends an open revocation of the pair."""
    _end_open(session, person, facility, "revocation", at)
    ref = f"grant-{uuid.uuid4().hex[:12]}"
    values = _values(person, facility, "grant", ref, at, until, at, actor=actor, note=note)
    wrote(session)
    session.execute(_c.insert().values(**values))
    return _one(session, person, facility, "grant", ref)


def revoke(
    session: Session, person: str, facility: str, *, at: datetime, actor: str, note: str
) -> CareRow:
    """An explicit revocation (who, why): the facility no longer receives the person's
    resources, whatever else says so, until a new grant. Open grants of the pair end."""
    _end_open(session, person, facility, "grant", at)
    _end_open(session, person, facility, "revocation", at)
    ref = f"revocation-{uuid.uuid4().hex[:12]}"
    values = _values(person, facility, "revocation", ref, at, None, at, actor=actor, note=note)
    wrote(session)
    session.execute(_c.insert().values(**values))
    return _one(session, person, facility, "revocation", ref)


def _end_open(session: Session, person: str, facility: str, source: str, at: datetime) -> None:
    wrote(session)
    session.execute(
        update(_c)
        .where(
            _c.c.person_id == person,
            _c.c.facility_id == facility,
            _c.c.source == source,
            _open(at),
        )
        .values(end_at=at, updated_at=at)
    )


def _one(session: Session, person: str, facility: str, source: str, ref: str) -> CareRow:
    return CareRow.of(session.execute(select(_c).where(_key(person, facility, source, ref))).one())


# -- read ---------------------------------------------------------------------------------------
# built once: routing asks this for every routed resource (bench/bench_routing.py)
_AT = bindparam("at")
_CARING = (
    select(_c)
    .where(
        _c.c.person_id.in_(bindparam("persons", expanding=True)),
        _c.c.start_at <= _AT,
        or_(_c.c.end_at.is_(None), _c.c.end_at > _AT),
    )
    .order_by(_c.c.id)
)


def caring(session: Session, persons: Iterable[str], at: datetime) -> dict[str, list[CareRow]]:
    """Facility -> its relationships open at ``at`` with any of ``persons`` (a person's ids:
    the index's person and the records linked to it); facilities with an open revocation
    are left out."""
    return caring_of(open_rows(session, persons, at))


def open_rows(session: Session, persons: Iterable[str], at: datetime) -> list[CareRow]:
    """Every relationship open at ``at`` with any of ``persons`` (revocations included),
    oldest first."""
    keys = sorted(set(persons))
    if not keys:
        return []
    return read_rows(session, _CARING, {"persons": keys, "at": at})


def open_rows_query(persons: Select[Any], *, on_postgresql: bool = False) -> Select[Any]:
    """``open_rows`` with the ids given by a query (build it once: parameter ``at`` and the
    query's own), e.g. adapter.identity.persons.KEYS: a person's ids and their open rows
    in one statement.

    ``on_postgresql``: the ids are gathered into an array first (``person_id = ANY(ARRAY)``,
    an InitPlan), so the rows are read by the ``uq_care_key`` index as soon as the table is
    past ~1,000 rows (the guess of the ids is not multiplied into a join). ``person_id IN
    (query)`` was planned as a hash join over a sequential scan of the whole table until it
    held ~4,000 rows (the recursive query is guessed at 23 ids): a 20,000-document night
    read the table once per document for its first 5,760 documents, 11.7 million rows
    (decision 0044, amended 2026-12-04)."""
    if on_postgresql:
        listed = persons.subquery()
        ids = cast(select(func.array_agg(listed.c.id)).scalar_subquery(), ARRAY(LargeBinary))
        chosen = _c.c.person_id == any_(ids)
    else:
        chosen = _c.c.person_id.in_(persons)
    return select(_c).where(chosen, _open(_AT)).order_by(_c.c.id)


def read_rows(session: Session, statement: Any, params: dict[str, Any]) -> list[CareRow]:
    found = execute_rows(session, statement, params)  # SQLite: on the driver (decision 0106)
    return [CareRow.of(row) for row in found]


# -- a bulk batch's reads of a person's open rows (SQLite, decision 0148) -----------------------
_BATCH = "adapter.care.batch-rows"  # BatchWrites.reads: a _BatchCare


def every_row_query(persons: Select[Any]) -> Any:
    """SQLite: every row kept under the ids ``persons`` gives (adapter.identity.persons.KEYS,
    parameter ``id``), open or not, by id, then each of those ids, in one statement: each
    row is the table's columns and ``key``, NULL on the care rows, the id on the others.
    Build it once."""
    keys = persons.cte("care_keys")
    held = select(*_c.c, type_coerce(null(), _c.c.person_id.type).label("key"))
    held = held.where(_c.c.person_id.in_(select(keys.c.id)))
    return union_all(held, select(*(null() for _ in _c.c), keys.c.id))


def open_rows_of(
    session: Session, opened: Any, every: Any, params: dict[str, Any]
) -> list[CareRow]:
    """``read_rows(session, opened, params)``: the rows open at ``params["at"]`` under the ids
    of the person ``params["id"]``, by id. In a bulk batch on SQLite, the person's rows are
    read once (``every``: ``every_row_query``) and those open at each moment chosen from them:
    the batch holds SQLite's write lock from its BEGIN IMMEDIATE to its commit, so only its
    own writes change them, and each write keeps them (``wrote``), as does any change of the
    patient index (adapter/identity/index/records.py ``forget_near``: the ids may change)
    and a message rolled back to its savepoint (``BatchWrites.rollback`` empties ``reads``).
    ``start_at <= at AND (end_at IS NULL OR end_at > at)`` on SQLite's integer microseconds
    (``UTCMicros``) is ``CareRow.open_at`` on the rows' instants."""
    writes = _held_writes(session)
    if writes is None or bind_of(session).dialect.name != "sqlite":
        return read_rows(session, opened, params)
    batch = writes.reads.get(_BATCH)
    if batch is None:
        batch = writes.reads[_BATCH] = _BatchCare()
    person = params["id"]
    rows = batch.rows.get(person)
    if rows is None:
        if person not in _seen(writes):  # a person met once: the open rows, as before
            _seen(writes).add(person)
            return read_rows(session, opened, params)
        found = execute_rows(session, every, {"id": person})
        rows = sorted((CareRow.of(r) for r in found if r.key is None), key=_row_id)
        batch.keep(person, {row.key for row in found if row.key is not None}, rows)
    at = params["at"]
    return [row for row in rows if row.open_at(at)]


@dataclass(slots=True)
class _BatchCare:
    """A bulk batch's reads of care rows: each person's, by id, and the persons whose ids
    hold each id."""

    rows: dict[str, list[CareRow]] = field(default_factory=dict)
    under: dict[str, list[str]] = field(default_factory=dict)

    def keep(self, person: str, keys: Iterable[str], rows: list[CareRow]) -> None:
        self.rows[person] = rows
        for key in keys:
            self.under.setdefault(key, []).append(person)

    def take(self, row: CareRow) -> None:
        """``row`` as written, into the rows of every person whose ids hold its id."""
        for person in self.under.get(row.person_id, ()):
            kept = [r for r in self.rows[person] if r.id != row.id]
            kept.append(row)
            kept.sort(key=_row_id)
            self.rows[person] = kept


def wrote(session: Session, row: CareRow | None = None) -> None:
    """A write of care rows in a bulk batch: the batch's reads of them (``open_rows_of``)
    take ``row`` as it now is, or, without one, are forgotten."""
    writes = _held_writes(session)
    batch = None if writes is None else writes.reads.get(_BATCH)
    if batch is None:
        return
    if row is None:
        del writes.reads[_BATCH]
        return
    batch.take(row)


def forget(session: Session) -> None:
    """The patient index changed: the ids of each person may have (``open_rows_of``)."""
    writes = _held_writes(session)
    if writes is not None:
        writes.reads.pop(_BATCH, None)


def _seen(writes: Any) -> set[str]:
    """The persons whose open rows the batch read: every row is read (``every``) for a
    person met again only, so that a batch of new patients reads what it read before
    (the statement of every row and the ids costs more than the one of open rows)."""
    seen: set[str] = writes.reads.setdefault(_SEEN, set())
    return seen


_SEEN = "adapter.care.batch-seen"  # BatchWrites.reads: the persons whose care was read


def _row_id(row: CareRow) -> int:
    return row.id


def _held_writes(session: Session) -> Any:
    from adapter.store.resources import held_writes  # it imports this module (visibility.py)

    return held_writes(session)


def caring_of(rows: Iterable[CareRow]) -> dict[str, list[CareRow]]:
    """What ``caring`` answers, from the open rows (``open_rows``)."""
    out: dict[str, list[CareRow]] = {}
    revoked: set[str] = set()
    for care in rows:
        if care.source == "revocation":
            revoked.add(care.facility_id)
        else:
            out.setdefault(care.facility_id, []).append(care)
    return {f: rows for f, rows in out.items() if f not in revoked}


def is_caring(session: Session, persons: Iterable[str], facility: str, at: datetime) -> bool:
    keys = sorted(set(persons))
    sources = (
        session.execute(
            select(_c.c.source).where(
                _c.c.person_id.in_(keys), _c.c.facility_id == facility, _open(at)
            )
        )
        .scalars()
        .all()
    )
    return "revocation" not in sources and any(s in POSITIVE for s in sources)


def list_care(
    session: Session,
    *,
    persons: Iterable[str] | None = None,
    facility: str | None = None,
    open_at: datetime | None = None,
    limit: int = 500,
) -> list[CareRow]:
    """Relationships of a person (its ids) and/or a facility, newest first; only those open
    at ``open_at`` when given."""
    statement = select(_c)
    if persons is not None:
        statement = statement.where(_c.c.person_id.in_(sorted(set(persons))))
    if facility is not None:
        statement = statement.where(_c.c.facility_id == facility)
    if open_at is not None:
        statement = statement.where(_open(open_at))
    statement = statement.order_by(_c.c.start_at.desc(), _c.c.id.desc()).limit(limit)
    return [CareRow.of(r) for r in session.execute(statement)]


def history_of(
    session: Session,
    patients: Iterable[str],
    *,
    types: Iterable[str],
    since: datetime,
) -> list[tuple[str, str, int, str | None]]:
    """(type, id, version, patient key) of the stored resources of ``types`` about
    ``patients`` ("Patient/<id>") changed since ``since``, oldest first."""
    keys, kinds = sorted(set(patients)), sorted(set(types))
    if not keys or not kinds:
        return []
    found = session.execute(
        select(_r.c.resource_type, _r.c.id, _r.c.version_id, _r.c.patient_key)
        .where(
            _r.c.patient_key.in_(keys),
            _r.c.resource_type.in_(kinds),
            _r.c.last_updated >= since,
            _r.c.deleted.is_(False),
        )
        .order_by(_r.c.last_updated, _r.c.resource_type, _r.c.id)
    )
    return [(t, i, int(v), p) for t, i, v, p in found]


def last_document(
    session: Session, patients: Iterable[str], *, loinc: str
) -> list[tuple[str, str, int, str | None]]:
    """The person's newest Composition of LOINC type ``loinc`` (a discharge summary is
    18842-5) and the document Bundle stored from the same message: (type, id, version,
    patient key) each; empty when there is none."""
    keys = sorted(set(patients))
    if not keys:
        return []
    rows = session.execute(
        select(_r.c.id, _r.c.version_id, _r.c.body, _r.c.message_id, _r.c.patient_key)
        .where(
            _r.c.patient_key.in_(keys),
            _r.c.resource_type == "Composition",
            _r.c.deleted.is_(False),
        )
        .order_by(_r.c.last_updated.desc())
    )
    for cid, version, body, message_id, pkey in rows:
        codes = {c.get("code") for c in ((body or {}).get("type") or {}).get("coding") or []}
        if loinc not in codes:
            continue
        found = [("Composition", cid, int(version), pkey)]
        if message_id is not None:
            bundles = session.execute(
                select(_r.c.id, _r.c.version_id).where(
                    _r.c.message_id == message_id,
                    _r.c.resource_type == "Bundle",
                    _r.c.deleted.is_(False),
                )
            )
            found.extend(("Bundle", bid, int(bv), None) for bid, bv in bundles)
        return found
    return []
