"""Writing and reading FHIR resources with their versions and index rows.

``save_resources`` is on the hot path (every message): one SELECT of the existing rows of
all the resources of the message (or the rows ``lock_resources`` locked already), then on
PostgreSQL a SELECT ... FOR UPDATE of those whose content changes (``_current_rows``: an
unchanged resource is never locked), then bulk Core INSERT/UPDATE/DELETE statements.

Read-merge-write (a Patient whose identifiers accumulate over messages) must read the stored
version under the lock the write holds: ``lock_resources`` first, merge what it returns,
then ``save_resources(..., locked=)`` (docs/decisions/0009-merge-locking.md).

In a bulk batch (adapter/pipeline/bulk.py) the search index, resource_version and outbox
rows, and the messages' Provenance rows (``hold_new``, decision 0050), are not written per
message but held in ``BatchWrites`` on the session and written once, at the batch's commit
(index rows also before a search reads them; decision 0047). On SQLite the executemanys go
to the driver as tuples (adapter/store/fast_insert.py).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from operator import itemgetter
from typing import Any, Final, NamedTuple

import orjson
from sqlalchemy import (
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from adapter.fhir.dates import DEFAULT_ZONE, format_instant, truncate_to_millis
from adapter.fhir.index_values import (
    OF_TYPE,
    IndexValue,
    index_values,
    meta_params,
    patient_key,
)
from adapter.store.body_stamps import StampedBody, with_stamps_sql
from adapter.store.driver_select import driver_many, execute_rows
from adapter.store.facilities import facility_key
from adapter.store.fast_insert import driver_executemany, insert_rows, insert_tuples
from adapter.store.history import HistoryQuery, read_history_page
from adapter.store.index_keep import COLUMNS, keep_stored, keep_terms
from adapter.store.index_keys import KEY_CHARS, head_key, tail_key
from adapter.store.index_rows_sqlite import (
    Groups,
    add_grouped,
    driver_index_rows,
    grouped,
    index_insert,
    without_nulls,
)
from adapter.store.keys import keys_in
from adapter.store.models import KINDS, Resource, ResourceVersion, SearchIndex
from adapter.store.params import param_ids
from adapter.store.resource_keys import local_target, new_keys, target_keys
from adapter.store.search_terms import (
    REFERENCE_KIND,
    delete_terms,
    search_terms,
    term_rows,
    uses_terms,
)
from adapter.store.search_tokens import (
    STRING_KIND,
    marked,
    moves,
    string_moves,
    string_param_moves,
    string_token,
    term_tokens,
    valued_token,
)
from adapter.store.systems import system_ids
from adapter.store.wide_insert import ROWS_A_STATEMENT, wide

_resource = Resource.__table__
_SQLITE: Final = SQLiteDialect_pysqlite()
_version = ResourceVersion.__table__
_index = SearchIndex.__table__


class Saved(NamedTuple):
    """One stored resource (a named tuple: made ~10 times a message, three times cheaper
    than a frozen dataclass's ``__init__``, decision 0150)."""

    resource_type: str
    id: str
    version_id: int
    changed: bool  # False: identical to the stored version, which was kept
    body: dict[str, Any]  # as stored, meta.versionId and meta.lastUpdated stamped
    patient_key: str | None = None
    resource_key: int | None = None  # resource.resource_key (the outbox row names it: 0084)


Key = tuple[str, str]  # (resourceType, id)


class Prepared(NamedTuple):
    """What ``save_resources`` derives from a resource's content alone, derived where the
    resources were made (a translation worker: decision 0054, decision 0050 amended
    2026-12-05 bulkcpu), by content hash: the patient key and the index rows without their
    resource type and key. ``save_resources`` computes the hash anyway; a resource changed
    since (merged with the stored one, marked, added by a step) has another hash and is
    derived again. ``zone``: the zone dates without one were read in (``index_values``)."""

    zone: str
    rows: dict[str, tuple[str | None, list[tuple[Any, ...]]]]
    # by (type, id): the content hash and a copy of ``meta`` the rows were derived from; a
    # resource the store changed in ``meta`` alone (the recognition mark, decision 0039,
    # set in the storing process) keeps its other parameters' rows (decision 0104)
    metas: dict[Key, tuple[str, Any]] | None = None


def prepare(resources: Iterable[dict[str, Any]], zone: tzinfo) -> Prepared:
    """``Prepared`` for ``resources`` (``zone``: the one the store will index them in)."""
    rows: dict[str, tuple[str | None, list[tuple[Any, ...]]]] = {}
    metas: dict[Key, tuple[str, Any]] = {}
    for resource in resources:
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            continue  # save_resources refuses it, as before
        tails = [r[2:] for r in _index_tuples(rtype, 0, index_values(resource, zone))]
        digest = content_hash(resource)
        rows[digest] = (patient_key(resource), tails)
        rid = resource.get("id")
        if isinstance(rid, str):
            # a copy: the store's steps change ``meta`` in place (and in a worker's
            # outcome, pickled once, it would be the very object of the resource)
            metas[(rtype, rid)] = (digest, copy.deepcopy(resource.get("meta")))
    return Prepared(str(zone), rows, metas)


def _meta_changed(
    prepared: Prepared, key: Key, resource: dict[str, Any], zone: tzinfo
) -> tuple[str | None, list[tuple[Any, ...]]] | None:
    """``prepare``'s patient key and rows for ``resource`` when the store changed it in
    ``meta`` alone since (the recognition mark): the rows of the parameters read from
    ``meta`` derived again, the others kept, in ``index_values``' order; None otherwise."""
    made = prepared.metas.get(key) if prepared.metas else None
    places = meta_params(key[0])
    if made is None or places is None:
        return None
    digest, meta = made
    done = prepared.rows.get(digest)
    if done is None:
        return None
    before = {k: v for k, v in resource.items() if k != "meta"}
    if meta is not None:
        before["meta"] = meta
    if content_hash(before) != digest:
        return None  # changed elsewhere too
    names, order = places
    tails = [t for t in done[1] if t[0] not in names]
    now = resource.get("meta")
    if now is not None and names:
        stub = {"resourceType": key[0], "meta": now}
        tails += [r[2:] for r in _index_tuples(key[0], 0, index_values(stub, zone))]
    try:  # stable: each parameter's rows keep their order (``:of-type`` after its own)
        tails.sort(key=lambda t: order[t[0].removesuffix(OF_TYPE)])
    except KeyError:
        return None
    return patient_key(resource), tails


@dataclass(frozen=True, slots=True)
class LockedRows:
    """The rows of some resources, locked by this transaction until it ends (FOR UPDATE on
    PostgreSQL; on SQLite the transaction holds the database write lock from BEGIN
    IMMEDIATE). ``rows`` has the existing ones, with their body; absent keys are new."""

    keys: frozenset[Key]
    rows: dict[Key, Row[Any]]
    # the bodies read as stored (SQLite: ``_locked_rows``), decoded when first asked for
    # (only the merged resources' are: decision 0125)
    decoded: dict[Key, Any] = field(default_factory=dict, compare=False, repr=False)

    def body(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The stored version as locked, or None when unknown or deleted."""
        key = (resource_type, resource_id)
        row = self.rows.get(key)
        if row is None or row.deleted:
            return None
        body = row.body
        if body.__class__ is not bytes and body.__class__ is not str:
            return body  # type: ignore[no-any-return]
        if key not in self.decoded:  # once: every call gives the same value, as before
            self.decoded[key] = _BODY_READ(body)
        return self.decoded[key]  # type: ignore[no-any-return]


def lock_resources(
    session: Session,
    keys: Iterable[Key],
    *,
    create_missing: Collection[Key] = (),
    now: datetime,
) -> LockedRows:
    """Lock the rows of these resources for the rest of the transaction and read them.

    Rows are locked in (type, id) order, so two messages sharing several resources queue
    behind each other instead of deadlocking. A row that does not exist yet cannot be
    locked: for the keys in ``create_missing`` (the resources whose new version depends on
    the stored one) PostgreSQL first takes a transaction-scoped advisory lock on each key
    (``_CREATOR_LOCKS``), in ascending order, so that a second creator waits for the first
    to commit and then reads what it wrote. (Until migration 0038 an empty placeholder row
    was inserted instead and replaced by ``save_resources``: the update left a dead copy
    of every new Patient row and new entries in the resource's five indexes, decision 0089.)
    On SQLite the transaction holds the database's write lock already. ``now`` is no longer
    used (it stamped the placeholder); kept for the callers.
    """
    wanted = frozenset(keys)
    if not wanted:
        return LockedRows(wanted, {})
    known = _known_rows(session)
    rest = wanted if known is None else [k for k in wanted if not known.covers(k)]
    missing = set(create_missing) & set(rest)
    if missing and session.get_bind().dialect.name == "postgresql":
        session.execute(_CREATOR_LOCKS, {"keys": sorted({creator_lock(k) for k in missing})})
    rows = _locked_rows(session, sorted(rest), with_body=True) if rest else {}
    if known is not None:  # the others were locked, and read, at the batch's start
        for key in rest:
            row = rows.get(key)
            known.set(
                key, None if row is None else known.given(KnownRow(*row)), locked=True, bodied=True
            )
        for key in wanted.difference(rest):
            if (row := known.rows[key][0]) is not None:
                rows[key] = known.given(row)
    return LockedRows(wanted, rows)


# ``pg_advisory_xact_lock(class, key)``: the two-integer form, a lock space apart from the
# one-bigint locks of the patient index and the audit chain (adapter/identity/index/locks.py,
# adapter/audit/writer.py); its class is the schema's (advisory locks are the database's:
# two stores in two schemas of one database never wait for each other's resources). Two
# resources sharing a key only wait for each other. Every lock of the set is taken in
# ascending order (the sorted subquery feeds the aggregate row by row)
_CREATOR_LOCKS: Final = text(
    "SELECT count(pg_advisory_xact_lock(hashtext(current_schema()), k)) FROM"
    " (SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS ordered"
)


def creator_lock(key: Key) -> int:
    """The advisory lock a creator of resource ``key`` takes: the first 4 bytes of the
    SHA-256 of ``Type/id`` as a signed 32-bit integer."""
    digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _current_rows(
    session: Session, latest: dict[Key, dict[str, Any]], digests: dict[Key, str]
) -> dict[Key, Row[Any]]:
    """The stored rows of the resources ``save_resources`` is given, those it will change
    locked until the transaction ends.

    On PostgreSQL the rows are read first without a lock and only those whose content
    differs are then locked (and read again under the lock, in key order): a resource most
    messages repeat unchanged (the sending facility's Organization) is never locked, so two
    writers sharing it (``adapter sync --jobs``, concurrent requests) do not queue behind each
    other until their batches commit. Reading an unchanged resource without a lock is as if
    this transaction came before a concurrent writer's change to it: nothing is written for
    it either way. On SQLite the transaction holds the database's write lock already: one
    read."""
    keys = sorted(latest)
    if session.get_bind().dialect.name != "postgresql":
        return _locked_rows(session, keys, with_body=False)
    known = _known_rows(session)
    if known is not None and all(key in known.rows for key in keys):
        # read at the batch's start, as this transaction changed them since (decision 0101)
        existing = {k: row for k in keys if (row := known.rows[k][0]) is not None}
        held = {k for k in keys if known.rows[k][1]}
    else:
        known, held = None, set()
        existing = _locked_rows(session, keys, with_body=False, lock=False)
    changing = [
        key
        for key in keys
        if key not in held
        and (row := existing.get(key)) is not None
        and (row.deleted or row.content_hash != digests[key])
    ]
    if changing:
        locked = _locked_rows(session, changing, with_body=False)
        existing.update(locked)
        if known is not None:
            for key in changing:
                row = locked.get(key)
                kept = None if row is None else KnownRow(*row, None)
                known.set(key, kept, locked=True, bodied=False)
    return existing


def _locked_rows(
    session: Session, keys: list[Key], *, with_body: bool, lock: bool = True
) -> dict[Key, Row[Any]]:
    by_type: dict[str, set[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, set()).add(rid)
    if not by_type:
        return {}
    types = tuple(sorted(by_type))
    ids = [sorted(by_type[rtype]) for rtype in types]
    counts = tuple(len(i) for i in ids)
    sqlite = session.get_bind().dialect.name == "sqlite"
    query = _LOCK_QUERIES.get((types, counts, with_body, lock, sqlite))
    if query is None and len(_LOCK_QUERIES) < _LOCK_QUERIES_MAX:
        query = _lock_query(types, counts, with_body, lock, sqlite)
    if query is not None:  # one parameter per id
        params = {f"i{n}_{k}": rid for n, some in enumerate(ids) for k, rid in enumerate(some)}
    else:  # a shape past the bound: the ids as expanding parameters
        query = _LOCK_QUERIES.get((types, None, with_body, lock, sqlite)) or _lock_query(
            types, None, with_body, lock, sqlite
        )
        params = {f"ids_{n}": some for n, some in enumerate(ids)}
    found = execute_rows(session, query, params)  # SQLite: on the driver (decision 0106)
    return {(row.resource_type, row.id): row for row in found}


# SQLite's body as stored, decoded by ``LockedRows.body`` when asked for: the column's own
# result processor on SQLite (a zstd frame or plain JSON text to its value)
_BODY_READ: Final = _resource.c.body.type.result_processor(_SQLITE, None) or (lambda v: v)

_LOCK_QUERIES: dict[
    tuple[tuple[str, ...], tuple[int, ...] | None, bool, bool, bool], Select[Any]
] = {}
# shapes seen (the types, the ids of each); a feed's messages repeat a few hundred at most
_LOCK_QUERIES_MAX = 2048


def _lock_query(
    types: tuple[str, ...],
    counts: tuple[int, ...] | None,
    with_body: bool,
    lock: bool = True,
    sqlite: bool = False,
) -> Select[Any]:
    """``_locked_rows``' SELECT ... FOR UPDATE for keys of ``types``, built once per shape:
    building the statement and its cache key afresh cost about as much as running it
    (decision 0047). ``counts``: how many ids of each type, one bound parameter each
    (``i<type>_<n>``); the SQL is the text an expanding parameter renders to for those
    counts, without rendering it again at every execution (decision 0050, amended
    2026-12-05 bulkcpu). None: expanding parameters ``ids_<type>``, any count. The
    condition is ``keys_in``'s (adapter/store/keys.py): per type, a key lookup on both
    databases. ``lock=False``: the same read without FOR UPDATE. ``sqlite``: the body as
    stored (``LockedRows.body`` decodes the few the merge reads) and no ORDER BY (the
    transaction holds the database's write lock: no lock order; the rows become a
    dictionary), SQLite's sort of the rows in a temporary B-tree saved (decision 0125)."""
    columns = [
        _resource.c.resource_type,
        _resource.c.id,
        _resource.c.version_id,
        _resource.c.content_hash,
        _resource.c.last_updated,
        _resource.c.deleted,
        _resource.c.patient_key,
        _resource.c.resource_key,
    ]
    if with_body:
        columns.append(
            # SQLite: as stored, with the row's stamps before a stripped body (0128)
            type_coerce(
                _resource.c.body.type.column_expression(_resource.c.body), NullType()
            ).label("body")
            if sqlite
            else _resource.c.body
        )
    query = select(*columns).where(
        or_(
            *(
                and_(
                    _resource.c.resource_type == rtype,
                    _resource.c.id.in_(bindparam(f"ids_{n}", expanding=True))
                    if counts is None
                    else _resource.c.id.in_([bindparam(f"i{n}_{k}") for k in range(counts[n])]),
                )
                for n, rtype in enumerate(types)
            )
        )
    )
    if not sqlite:
        query = query.order_by(_resource.c.resource_type, _resource.c.id)  # the lock order
    if lock:
        query = query.with_for_update()
    if len(_LOCK_QUERIES) < _LOCK_QUERIES_MAX:
        _LOCK_QUERIES[(types, counts, with_body, lock, sqlite)] = query
    return query


def content_hash(resource: dict[str, Any]) -> str:
    """The first 128 bits of the sha256 of the canonical JSON (sorted keys) without
    meta.versionId/lastUpdated, as 32 hex characters: enough to tell a change, and 16
    bytes stored (``ShortDigest``, decision 0092)."""
    # (a resource without ``meta``, a translated one, is its own canonical form)
    canonical = _without_stamps(resource) if "meta" in resource else resource
    return _SHA256(_DUMPS(canonical, option=_SORTED)).hexdigest()[:32]


_SHA256: Final = hashlib.sha256
_DUMPS: Final = orjson.dumps
_SORTED: Final = orjson.OPT_SORT_KEYS


def _without_stamps(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    if not isinstance(meta, dict) or not ({"versionId", "lastUpdated"} & meta.keys()):
        return resource
    rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
    out = {k: v for k, v in resource.items() if k != "meta"}
    if rest:
        out["meta"] = rest
    return out


def _stamped(
    resource: dict[str, Any],
    version_id: int,
    last_updated: datetime,
    stamp: str | None = None,
    kind: type[dict[str, Any]] = dict,
) -> dict[str, Any]:
    """A copy with meta.versionId/lastUpdated, meta placed after id as FHIR JSON orders it
    (``stamp``: ``last_updated`` formatted already, once for all the resources of a save;
    ``kind``: ``StampedBody`` for the body of a row with this version and time, 0128)."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(last_updated) if stamp is None else stamp
    keys = iter(resource)
    if next(keys, None) == "resourceType" and next(keys, None) == "id":
        # the usual order (a translated resource's): the same dictionary without a Python
        # step per key (decision 0150); ``update`` keeps the three first keys where they are
        out = kind(resourceType=resource["resourceType"], id=resource["id"], meta=meta)
        out.update(resource)
        out["meta"] = meta
        return out
    out = kind()
    for key, value in resource.items():
        if key == "meta":
            continue
        out[key] = value
        if key == "id":
            out["meta"] = meta
    if "meta" not in out:
        out["meta"] = meta
    return out


def save_resources(
    session: Session,
    resources: list[dict[str, Any]],
    *,
    message_id: str | None,
    now: datetime,
    facility_id: str | None = None,
    zone: tzinfo = DEFAULT_ZONE,
    locked: LockedRows | None = None,
    with_index: bool = True,
    hold_new: bool = False,
    prepared: Prepared | None = None,
) -> list[Saved]:
    """Store the resources of one message; unchanged content keeps its version.

    Returns one ``Saved`` per input resource, in input order (a resource given twice is
    stored once, the last one wins). ``zone`` reads dates without a zone for the index and
    must be the zone the searches use. ``locked``: the rows ``lock_resources`` locked for
    these resources in this transaction (else they are locked here). ``with_index=False``
    leaves the index rows out (to find which part of a resource the database refuses:
    adapter/store/refusals.py). ``hold_new``: in a bulk batch, the rows of new resources
    are held with the batch's writes (``BatchWrites.create``) instead of inserted now: only
    for resources nothing in the batch reads back (the message's Provenance, whose id is
    the message's). ``prepared``: what ``prepare`` derived from the resources as they were
    made; used for a resource whose content hash it has. Never commits. Two transactions
    creating the same new
    resource at once without ``create_missing``: the later one fails with IntegrityError
    and can be retried.
    """
    if now.tzinfo is None:
        raise ValueError("save_resources needs a timezone-aware now (naive datetime given)")
    if not resources:
        return []
    last_updated = truncate_to_millis(now)
    stamp = format_instant(last_updated)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in resources:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not rid:
            raise ValueError("every resource needs a resourceType and an id")
        latest[(rtype, rid)] = resource

    digests = {key: content_hash(resource) for key, resource in latest.items()}
    facility = facility_key(session, facility_id)
    if locked is None:
        existing = _current_rows(session, latest, digests)
    else:
        if not locked.keys >= latest.keys():
            raise ValueError("save_resources: resources given that lock_resources did not lock")
        existing = locked.rows

    buffer = held_writes(session)
    fresh = [key for key in latest if key not in existing]
    given = dict(zip(fresh, new_keys(session, len(fresh)), strict=True))
    saved: dict[tuple[str, str], Saved] = {}
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    index_rows: list[IndexRow] = []
    stored_history: list[Key] = []  # superseded versions whose history row is stored
    known = prepared.rows if prepared is not None and prepared.zone == str(zone) else None
    # the message's resources' keys by ``Type/id``: their rows name them by key (0080);
    # with those of the message's earlier calls (its Provenance names them all: 0083)
    targets = _message_targets(session, message_id)
    _add_targets(targets, ((t, i, k) for (t, i), k in given.items()))
    _add_targets(targets, ((t, i, row.resource_key) for (t, i), row in existing.items()))
    for key, resource in latest.items():
        digest = digests[key]
        old = existing.get(key)
        if old is not None and old.content_hash == digest and not old.deleted:
            saved[key] = Saved(
                key[0],
                key[1],
                old.version_id,
                False,
                _stamped(resource, old.version_id, old.last_updated),
                old.patient_key,
                old.resource_key,
            )
            continue
        version_id = 1 if old is None else old.version_id + 1
        body = _stamped(resource, version_id, last_updated, stamp, StampedBody)  # 0128
        done = known.get(digest) if known else None
        if done is None and known and prepared is not None:
            done = _meta_changed(prepared, key, resource, zone)
        pkey = patient_key(resource) if done is None else done[0]
        rkey = given[key] if old is None else old.resource_key
        # one dictionary a row, its key last (the UPDATE of a changed row sets the others)
        row = {
            "resource_type": key[0],
            "id": key[1],
            "version_id": version_id,
            "last_updated": last_updated,
            "deleted": False,
            "content_hash": digest,
            "body": body,
            "message_id": message_id,
            "patient_key": pkey,
            "facility_key": facility,
            "resource_key": rkey,
        }
        (new_rows if old is None else changed_rows).append(row)
        if buffer is not None:
            # the current version has no history row (decision 0075): the batch remembers
            # it, and writes it to the history only if a later message supersedes it
            if old is not None:
                stored_history.extend(buffer.keep_bodies([key]))
            buffer.add_version(
                {
                    "resource_type": key[0],
                    "id": key[1],
                    "version_id": version_id,
                    "last_updated": last_updated,
                    "deleted": False,
                    "body": None,  # set when superseded in the batch (``keep_bodies``)
                    "message_id": message_id,
                },
                body,
            )
        if not with_index:
            rows = []
        elif done is None:  # the references to the message's resources named in the pass
            rows = _index_tuples(key[0], rkey, index_values(resource, zone), targets)
        else:
            rows = [(key[0], rkey, *tail) for tail in done[1]]
            if rows:
                rows = _named_by_key(rows, targets)
        if buffer is not None:
            buffer.replace(key, rkey, rows, stored=old is not None)
        else:
            index_rows.extend(rows)
        saved[key] = Saved(key[0], key[1], version_id, True, body, pkey, rkey)

    known = _known_rows(session)
    if known is not None:  # what the batch's later messages read of these rows (0101)
        for row in (*new_rows, *changed_rows):
            known.wrote(row)
    if new_rows:
        # in key order too: two messages inserting the same new rows wait, never deadlock
        new_rows.sort(key=_ROW_KEY)
        if hold_new and buffer is not None:
            buffer.create(new_rows)
        else:
            insert_rows(session, _resource, new_rows)
    if changed_rows:
        changed_keys = [(r["resource_type"], r["id"]) for r in changed_rows]
        if buffer is None:
            stored_history = [(r["resource_type"], r["id"]) for r in changed_rows]
        if stored_history:  # else every one was held by the batch and took its body there
            _keep_superseded_bodies(session, stored_history)
        session.execute(
            update(_resource).where(
                and_(
                    _resource.c.resource_type == bindparam("b_type"),
                    _resource.c.id == bindparam("b_id"),
                )
            ),
            # SET takes the remaining keys of the parameter sets
            [
                {
                    **{
                        k: v
                        for k, v in row.items()
                        if k not in ("resource_type", "id", "resource_key")
                    },
                    "b_type": row["resource_type"],
                    "b_id": row["id"],
                }
                for row in changed_rows
            ],
        )
    # the changed resources' stored rows are replaced (the batch's buffer: when written);
    # those written again unchanged stay (decision 0138)
    replacing = (
        {existing[k].resource_key for k in changed_keys} if changed_rows and buffer is None else ()
    )
    if index_rows or replacing:
        _insert_index_tuples(session, index_rows, replacing=replacing)
    return [saved[(r["resourceType"], r["id"])] for r in resources]


_ROW_KEY: Final = itemgetter("resource_type", "id")  # a resource row's key, in C
_BUFFER: Final = "adapter.store.index_buffer"  # the session.info key of a batch's buffer
_MISSING: Final[Any] = object()


class KnownRow(NamedTuple):
    """A resource row as this transaction wrote it: the columns ``_locked_rows`` reads."""

    resource_type: str
    id: str
    version_id: int
    content_hash: str
    last_updated: datetime
    deleted: bool
    patient_key: str | None
    resource_key: int
    body: dict[str, Any] | None


class KnownRows:
    """PostgreSQL, a bulk batch: the stored rows of the batch's resources, read in two
    statements at its start (``read_batch_rows``) and kept as the batch's messages write
    them, so that a message's merge and save read no row (decision 0101). ``rows``: key ->
    (the row or None if there is none, whether this transaction holds its lock (FOR UPDATE,
    or the creator's advisory lock of a row not there), whether ``body`` is kept). Every
    change is journalled in the batch's ``BatchWrites``: a message rolled back to its
    savepoint takes its changes with it (and a lock it took inside)."""

    def __init__(self, journal: list[tuple[Any, ...]]) -> None:
        self.rows: dict[Key, tuple[Any, bool, bool]] = {}
        self._journal = journal

    def covers(self, key: Key) -> bool:
        """Whether ``lock_resources`` has ``key`` locked and read, with its body."""
        entry = self.rows.get(key)
        return entry is not None and entry[1] and (entry[0] is None or entry[2])

    @staticmethod
    def given(row: KnownRow) -> KnownRow:
        """``row`` with a body of its own, as a read from the database gives one: the merge
        may share its parts with what it returns, and steps may change those."""
        if row.body is None:
            return row
        return row._replace(body=orjson.loads(orjson.dumps(row.body)))

    def set(self, key: Key, row: Any, *, locked: bool, bodied: bool) -> None:
        self._journal.append(("known", self, key, self.rows.get(key, _MISSING)))
        self.rows[key] = (row, locked, bodied)

    def wrote(self, row: dict[str, Any]) -> None:
        """A resource row ``save_resources`` is writing (inserted or updated): locked by the
        write; its body kept (a copy: steps may change the one they were given) where the
        key's was."""
        key = (row["resource_type"], row["id"])
        entry = self.rows.get(key)
        if entry is None:
            return  # not the batch's: read from the database, as before
        bodied = entry[2] or (entry[0] is None and entry[1])
        body = orjson.loads(orjson.dumps(row["body"])) if bodied else None  # its own
        known = KnownRow(
            key[0],
            key[1],
            row["version_id"],
            row["content_hash"],
            row["last_updated"].astimezone(UTC),  # as read back
            row["deleted"],
            row["patient_key"],
            row["resource_key"],
            body,
        )
        self.set(key, known, locked=True, bodied=bodied)


def _known_rows(session: Session) -> KnownRows | None:
    writes = held_writes(session)
    return None if writes is None else writes.known


# PostgreSQL: the rows of keys given as two arrays (types, ids), locked in key order (the
# lock order of ``_locked_rows``), with their bodies; ``_BATCH_READ`` the same without lock
# and body. One statement text for any count (a bulk batch's few hundred keys)
_BATCH_COLUMNS: Final = (
    "resource_type", "id", "version_id", "content_hash", "last_updated", "deleted",
    "patient_key", "resource_key",
)  # fmt: skip
_BATCH_KEYS: Final = (
    " FROM resource AS r JOIN unnest(CAST(:types AS text[]), CAST(:ids AS text[]))"
    " AS k(t, i) ON r.resource_type = k.t AND r.id = k.i"
)
_BATCH_LOCK: Final = text(
    f"SELECT {', '.join(f'r.{c}' for c in _BATCH_COLUMNS)},"
    f" {with_stamps_sql('postgresql', 'r')} AS body{_BATCH_KEYS}"  # decision 0128
    " ORDER BY r.resource_type, r.id FOR UPDATE OF r"
).columns(*(_resource.c[c] for c in _BATCH_COLUMNS), _resource.c.body)
_BATCH_READ: Final = text(
    f"SELECT {', '.join(f'r.{c}' for c in _BATCH_COLUMNS)}{_BATCH_KEYS}"
).columns(*(_resource.c[c] for c in _BATCH_COLUMNS))


def read_batch_rows(session: Session, merging: Iterable[Key], others: Iterable[Key]) -> None:
    """PostgreSQL, a bulk batch (``batch_writes``), before its first message: lock the rows
    of the resources its messages merge (``merging``: the creator's advisory lock of each,
    then its row FOR UPDATE, both in key order) and read them with their bodies, and read
    the rows of ``others`` without a lock, in three statements for the batch instead of
    three a message (``KnownRows``, decision 0101). Elsewhere nothing."""
    writes = held_writes(session)
    if writes is None or session.get_bind().dialect.name != "postgresql":
        return
    locking = sorted(set(merging))
    reading = sorted(set(others).difference(locking))
    known = KnownRows(writes._journal)
    if locking:
        session.execute(_CREATOR_LOCKS, {"keys": sorted({creator_lock(k) for k in locking})})
        _know(session, known, _BATCH_LOCK, locking, locked=True)
    if reading:
        _know(session, known, _BATCH_READ, reading, locked=False)
    writes.known = known


def _know(
    session: Session, known: KnownRows, statement: Any, keys: list[Key], locked: bool
) -> None:
    """``known.rows`` of ``keys`` as ``statement`` reads them (a missing row: None); an
    unlocked read has no body."""
    found = {
        (r.resource_type, r.id): r
        for r in session.execute(
            statement, {"types": [k[0] for k in keys], "ids": [k[1] for k in keys]}
        )
    }
    for key in keys:
        row = found.get(key)
        made = None if row is None else (KnownRow(*row) if locked else KnownRow(*row, None))
        known.rows[key] = (made, locked, locked)


class BatchWrites:
    """The write-only rows of a bulk batch, written at its commit (decision 0047): search
    index rows, resource_version rows and outbox rows (adapter/store/outbox/enqueue.py),
    and ``created``: new resource rows nothing in the batch reads (the messages'
    Provenance, decision 0050), written first: the index rows' foreign key names them.

    Index: ``rows`` has each resource changed in the batch -> its current index rows;
    ``stale`` the resources whose rows in the database are deleted before ``rows`` are
    inserted. The rows of a version a later message of the batch replaced (``superseded``)
    are still written first and deleted with the stale ones: the database sees every value
    a message stored one by one would have shown it, so one it refuses fails the batch
    (each message then goes the single-message way, the refused one quarantined as
    before) instead of passing unseen. Versions and outbox rows are appended in the order
    the messages made them (outbox ids, hence delivery order, stay as they were).

    Every change is journalled so that ``rollback`` undoes what a message did since its
    savepoint began, a write of the index rows (``take_index``, before a search) included:
    the database rolls that write back with the savepoint, so its rows come back here.
    """

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []  # new resource rows nothing reads back
        self.rows: dict[Key, list[IndexRow]] = {}
        self.stale: set[int] = set()  # resource keys
        self.superseded: list[IndexRow] = []
        self.versions: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        # other write-only rows, by table, in the order made (the patient index's
        # identity_history rows: decision 0050, amended)
        self.tables: dict[Table, list[dict[str, Any]]] = {}
        # what a step read and may read again while nothing it depends on changed; emptied
        # by ``rollback`` (the patient index's ``near``: decision 0050, amended)
        self.reads: dict[str, Any] = {}
        self._current: dict[Key, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._journal: list[tuple[Any, ...]] = []
        # PostgreSQL: the inbound messages received in the batch whose row is not written
        # yet (id -> the message): each is inserted once, in its final form, when its
        # result is known (adapter/store/messages.py, decision 0089). None: rows are
        # written at once (SQLite, whose UPDATE of a row leaves no dead copy)
        self.messages: dict[str, Any] | None = None
        # PostgreSQL bulk batch: the rows of its resources (``read_batch_rows``)
        self.known: KnownRows | None = None
        # PostgreSQL: UPDATEs of rows nothing in the batch reads back (the drain's message
        # results, decision 0116), by statement, sent as one executemany each at the commit
        self.updates: dict[Any, list[dict[str, Any]]] = {}
        # SQLite, a bulk batch stored at once: each message's result UPDATE is held in
        # ``updates`` too (decision 0133); a failure at the commit stores the batch again,
        # a savepoint and an UPDATE a message (adapter/pipeline/bulk.py)
        self.hold_results = False

    def replace(self, key: Key, rkey: int, rows: list[IndexRow], *, stored: bool) -> None:
        """``key``'s new index rows (``rkey`` its resource key); ``stored``: its row existed
        when it was locked (its index rows in the database, if any, are stale)."""
        before = self.rows.get(key, _MISSING)
        entry = ("key", key, before, rkey in self.stale, len(self.superseded), rkey)
        self._journal.append(entry)
        if before is not _MISSING:
            # a value the new rows hold too reaches the database with them: only the others
            # are written as transient rows to be deleted again (decision 0138)
            now = set(rows)
            self.superseded.extend(r for r in before if r not in now)
            stored = True  # the superseded rows, once written, are deleted with the key's
        self.rows[key] = rows
        if stored:
            self.stale.add(rkey)

    def add_version(self, row: dict[str, Any], body: dict[str, Any]) -> None:
        """A new current version (``body`` its body, which the resource row holds): its
        resource_version row, written at the commit only if a later message of the batch
        supersedes it (``keep_bodies`` gives the row its body; decision 0075)."""
        key = (row["resource_type"], row["id"])
        self._journal.append(("version", key, self._current.get(key, _MISSING)))
        self.versions.append(row)
        self._current[key] = (row, body)

    def keep_bodies(self, keys: list[Key]) -> list[Key]:
        """Before these resources take new versions: their current version becomes a
        history row with its body (``_keep_superseded_bodies``) here when the batch made
        it; returns the keys whose current version is the database's resource row."""
        stored = []
        for key in keys:
            current = self._current.get(key)
            if current is None:
                stored.append(key)
            else:
                self._journal.append(("body", current[0]))
                current[0]["body"] = current[1]
        return stored

    def create(self, rows: list[dict[str, Any]]) -> None:
        """New resource rows (``save_resources(hold_new=True)``), written before the index
        rows, whose foreign key names them."""
        self._journal.append(("create", len(self.created)))
        self.created.extend(rows)

    def add_outbox(self, rows: list[dict[str, Any]]) -> None:
        self._journal.append(("outbox", len(self.outbox)))
        self.outbox.extend(rows)

    def add_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Rows of ``table`` (with the same keys) that nothing in the batch reads back,
        inserted at the commit in the order given."""
        held = self.tables.setdefault(table, [])
        self._journal.append(("rows", held, len(held)))
        held.extend(rows)

    def add_updates(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        """Parameters of ``statement`` (an UPDATE of rows nothing in the batch reads back),
        executed at the commit in the order given."""
        held = self.updates.setdefault(statement, [])
        self._journal.append(("rows", held, len(held)))
        held.extend(rows)

    def hold_message(self, message: Any) -> None:
        """A new inbound message whose row waits for its result (``messages``)."""
        assert self.messages is not None
        self._journal.append(("message", message.id))
        self.messages[message.id] = message

    def mark(self) -> int:
        """A point to ``rollback`` to (when a savepoint begins)."""
        return len(self._journal)

    def rollback(self, mark: int) -> None:
        """Undo every change since ``mark``, latest first; forget ``reads`` (they may
        have seen what the database just rolled back)."""
        self.reads.clear()
        while len(self._journal) > mark:
            entry = self._journal.pop()
            kind = entry[0]
            if kind == "take":
                self.rows, self.stale, self.superseded = entry[1], entry[2], entry[3]
                self.created = entry[4]
            elif kind == "create":
                del self.created[entry[1] :]
            elif kind == "version":
                self.versions.pop()
                if entry[2] is _MISSING:
                    del self._current[entry[1]]
                else:
                    self._current[entry[1]] = entry[2]
            elif kind == "body":
                entry[1]["body"] = None
            elif kind == "outbox":
                del self.outbox[entry[1] :]
            elif kind == "rows":
                del entry[1][entry[2] :]
            elif kind == "known":
                _, known, key, before = entry
                if before is _MISSING:
                    del known.rows[key]
                else:
                    known.rows[key] = before
            elif kind == "message":
                if self.messages is not None:
                    self.messages.pop(entry[1], None)
            else:
                _, key, rows, stale, superseded, rkey = entry
                if rows is _MISSING:
                    self.rows.pop(key, None)
                else:
                    self.rows[key] = rows
                (self.stale.add if stale else self.stale.discard)(rkey)
                del self.superseded[superseded:]

    def forget(self) -> None:
        """The changes so far are kept (their savepoint was released): no undo needed."""
        self._journal.clear()

    def take_index(
        self,
    ) -> tuple[list[dict[str, Any]], list[IndexRow], list[int], list[IndexRow]]:
        """The created resource rows, the superseded index rows, the stale resource keys and the
        index rows to insert, in the order they are written; those parts are emptied
        (journalled)."""
        rows = [r for rs in self.rows.values() for r in rs]
        taken = (self.created, self.superseded, sorted(self.stale), rows)
        self._journal.append(("take", self.rows, self.stale, self.superseded, self.created))
        self.rows, self.stale, self.superseded, self.created = {}, set(), [], []
        return taken


# the foreign keys to inbound_message, deferrable on PostgreSQL (migration 0038)
MESSAGE_FOREIGN_KEYS: Final = (
    "fk_resource_message_id_inbound_message",
    "fk_resource_version_message_id_inbound_message",
    "fk_outbox_message_id_inbound_message",
)
_DEFER_MESSAGE_KEYS: Final = text(f"SET CONSTRAINTS {', '.join(MESSAGE_FOREIGN_KEYS)} DEFERRED")


def batch_writes(session: Session) -> BatchWrites:
    """From now on this session holds its write-only rows (a bulk batch: save_resources,
    enqueue_many); the caller must ``flush_batch_writes`` before the transaction commits.

    PostgreSQL: a new message's row is held too, and inserted once when its result is known
    (``messages``): an insert then an UPDATE left a dead copy of every message row (half
    the table after a night) and new entries in its four indexes (decision 0089). Its
    resources are written before it, so the foreign keys to it are checked at the commit
    (deferred for this transaction; a message rolled back to its savepoint takes its rows
    with it)."""
    writes = BatchWrites()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_DEFER_MESSAGE_KEYS)
        writes.messages = {}
    session.info[_BUFFER] = writes
    return writes


def held_writes(session: Session) -> BatchWrites | None:
    """The session's ``BatchWrites`` when it is a bulk batch's, else None."""
    return session.info.get(_BUFFER)


def flush_index_rows(session: Session) -> None:
    """Write the held index rows, if any: before any read of search_index in the
    transaction (adapter/store/search.py ``find``), so that it sees what the batch stored
    so far. A failure fails the statement's savepoint (the message), or the batch."""
    writes = held_writes(session)
    if writes is None or not (writes.rows or writes.stale or writes.created):
        return
    created, superseded, stale, rows = writes.take_index()
    if created:  # first: the index rows' foreign key names them
        insert_rows(session, _resource, created)
    if superseded:  # deleted with the stale ones next: numbered apart from the stored rows
        _insert_index_tuples(session, superseded, transient=True)
    if rows or stale:  # the stale rows written again unchanged stay (decision 0138)
        _insert_index_tuples(session, rows, replacing=set(stale))


def flush_batch_writes(session: Session) -> None:
    """Write everything the batch held, before its commit (a failure fails the batch:
    each message then goes the single-message way). The session holds no more."""
    from adapter.store.outbox.enqueue import insert_outbox_rows  # it imports this module

    writes = held_writes(session)
    if writes is None:
        return
    if writes.messages:  # received, no result recorded (none is expected): kept as they are
        from adapter.store.messages import insert_held_messages  # it imports this module

        insert_held_messages(session, list(writes.messages.values()))
        writes.messages.clear()
    flush_index_rows(session)
    # only superseded versions have a history row; the current ones are the resource rows
    superseded = [row for row in writes.versions if row["body"] is not None]
    if superseded:
        insert_rows(session, _version, superseded)
    if writes.outbox:
        insert_outbox_rows(session, writes.outbox)
    for table, rows in writes.tables.items():
        if rows:
            insert_rows(session, table, rows)
    for statement, rows in writes.updates.items():
        # one executemany: psycopg pipelines it, one round trip; SQLite: on the driver (0133)
        if rows and not driver_many(session, statement, rows):
            session.connection().execute(statement, rows)
    del session.info[_BUFFER]


def _keep_superseded_bodies(session: Session, keys: list[Key]) -> None:
    """Before the resource rows take their new versions: each one's current version (its
    resource row: version, time, message, body) becomes a history row. The current version
    has none (decision 0075; before, a row without a body: decision 0042). A placeholder
    row (version 0, lock_resources) is no version: nothing to keep."""
    columns = ("resource_type", "id", "version_id", "last_updated", "deleted", "body", "message_id")
    for start in range(0, len(keys), _DELETE_CHUNK):
        chunk = keys[start : start + _DELETE_CHUNK]
        current = select(*(_resource.c[name] for name in columns)).where(
            keys_in(_resource.c.resource_type, _resource.c.id, chunk), _resource.c.version_id > 0
        )
        session.execute(insert(_version).from_select(list(columns), current))


def insert_index_rows(
    session: Session, rows: list[dict[str, Any]], *, transient: bool = False
) -> None:
    """Insert search_index rows (``index_row``'s dictionaries): on PostgreSQL by COPY
    (decisions 0034, 0053), on SQLite as tuples to the driver's executemany (0050). Each
    row's ``system`` (the text, as ``index_row`` gives it) becomes ``system_id`` here, and
    its type, parameter and kind ``param_id``, at the write (decisions 0059, 0071): the rows
    a bulk batch holds keep the names, so a write rolled back and tried again looks its ids
    up again. ``transient``: as ``_insert_index_tuples``."""
    values = itemgetter(*_INDEX_ROW_KEYS)
    _insert_index_tuples(session, [values(row) for row in rows], transient=transient)


# an index row as the store holds it: the values of these keys, the names where their ids go
# (``system``: 0059; ``resource_type``, ``param`` and ``kind``: 0071)
IndexRow = tuple[Any, ...]
_INDEX_ROW_KEYS: Final = (
    "resource_type", "resource_key", "param", "kind", "system", "code", "value", "value_norm",
    "value_date_start", "value_date_end", "value_number", "reference", "code_full",
    "value_norm_full", "reference_full",
)  # fmt: skip
# the columns written, in the table's column order (the compiled INSERT's: no reordering
# in fast_insert, decision 0083); ``target_key`` is the reference's target (decision 0080).
# The row's number comes first (``row_id``: on SQLite the table's key with ``resource_key``
# and ``kind``, decision 0085; on PostgreSQL a smallint, decision 0098)
_INDEX_COLUMNS: Final = (
    "resource_key", "value_date_start", "value_date_end", "value_number", "target_key",
    "param_id", "system_id", "kind", "code", "value", "value_norm", "reference", "code_full",
    "value_norm_full", "reference_full",
)  # fmt: skip
_REFERENCE: Final = _INDEX_ROW_KEYS.index("reference")
_TAIL_REFERENCE: Final = _REFERENCE - 2  # in a value's row without its type and key
# an index row's parameter (type, name, kind), its ``value_number`` place, system, reference
_PARAM_OF: Final = itemgetter(0, 2, 3)
_NUMBER_OF: Final = itemgetter(10)
_SYSTEM_OF: Final = itemgetter(4)
_REFERENCE_OF: Final = itemgetter(_REFERENCE)
# SQLite: the rows of a write that replaces none grouped by their empty columns as they are
# built (``driver_index_rows(groups=...)``); the tests turn it off to see the rows whole
_GROUPED_AS_BUILT = True
# SQLite: the index rows' INSERTs of this many rows each (``wide``); the tests set 1 to see
# the rows one a statement
_ROWS_A_STATEMENT = ROWS_A_STATEMENT
assert ("row_id", *_INDEX_COLUMNS) == COLUMNS  # the rows index_keep compares


def _bare(w: tuple[Any, ...]) -> bool:
    """A written row (``_INDEX_COLUMNS``) with nothing but its resource, parameter and kind."""
    return all(w[n] is None for n in (1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 14))


# PostgreSQL: the most rows one resource may have in search_index, ``row_id`` being a
# smallint (0 to 32,767; -1 to -32,768 for transient rows; decision 0098). SQLite's
# integer has no such bound
ROWS_MAX: Final = 32768
# session.info: (the innermost transaction, the message id, {Type/id: resource key})
_NAMED: Final = "adapter.store.message_targets"


def _insert_index_tuples(
    session: Session,
    rows: list[IndexRow],
    *,
    transient: bool = False,
    replacing: Collection[int] = (),
) -> None:
    """``insert_index_rows`` of ``IndexRow`` tuples (the bulk path: no dictionary per row;
    decision 0050, amended). A reference to a resource of the store is written as its
    target's key (decision 0080): ``save_resources`` puts the key of a resource of the
    same message in the row's ``reference`` place already (``_named_by_key``, an int);
    the other texts are looked up here (``target_keys``, one SELECT). The rows are built
    in ``_INDEX_COLUMNS`` order by one comprehension; a row with a reference text by a
    call (decision 0083).

    Each row is numbered among its resource's rows of this call (``row_id``: 0, 1, ... in
    the order given; on SQLite the table's key with ``resource_key`` and ``kind``, decision
    0085; on PostgreSQL a smallint, decision 0098): every caller writes all of a
    resource's rows at once, after deleting the ones stored, so the number is unique among
    them. ``transient``: rows deleted again before the transaction ends while the
    resource's stored rows are still there (a bulk batch's superseded versions, a refusal's
    trial value): numbered -1, -2, ..., apart from every stored row. PostgreSQL numbers the
    rows left after the arrays took the references named by key (``ROWS_MAX``).
    ``replacing``: resource keys whose stored rows these rows replace: the stored rows that
    are written again unchanged stay, the others are deleted (``index_keep``, 0138)."""
    if not rows:
        if replacing:
            _delete_index_rows(session, sorted(replacing))
        return
    # the distinct values of a column gathered in C (``map``), a row at a time no more
    params = param_ids(session, set(map(_PARAM_OF, rows)))
    # an identifier's row carrying its type has the type's system as text where a number
    # goes (``_typed``): written as its id
    typing = {v for v in set(map(_NUMBER_OF, rows)) if v.__class__ is str}
    typed = [n for n, r in enumerate(rows) if r[10].__class__ is str] if typing else []
    systems: dict[str | None, int | None] = {None: None}
    named = set(map(_SYSTEM_OF, rows))
    named.update(typing)
    systems.update(system_ids(session, named - {None}))
    texts = {ref for ref in set(map(_REFERENCE_OF, rows)) if ref.__class__ is str}
    targets: dict[Any, int] = target_keys(session, texts) if texts else {}
    kinds = KINDS
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "sqlite":  # in the driver's form in one pass (decision 0120)
        keys = ("row_id", *_INDEX_COLUMNS)
        found = index_insert(_index, dialect, keys)
        if found is not None:
            # one executemany a set of empty columns, NULL written in the statement (0140)
            kept: list[tuple[bool, ...]] = []
            if not _GROUPED_AS_BUILT:
                values = driver_index_rows(
                    rows, found, params, systems, kinds, targets, transient=transient, kept=kept
                )
                values = keep_stored(session, values, replacing, kept=kept)
                statements = without_nulls(found.sql, values, kept)
            else:  # grouped as they are built (decision 0143)
                groups: Groups = {}
                # but for the rows replacing stored ones: compared with those first (0147)
                values = driver_index_rows(
                    rows, found, params, systems, kinds, targets,
                    transient=transient, kept=kept, groups=groups, apart=replacing,
                )  # fmt: skip
                if values:
                    values = keep_stored(session, values, replacing, kept=kept)
                    for bound, row in zip(kept, values, strict=True):
                        add_grouped(groups, bound, row)
                elif replacing:  # their stored rows all go
                    keep_stored(session, (), replacing)
                statements = grouped(found.sql, groups)
            # INSERTs of several rows each (decision 0147)
            for sql, some in wide(statements, _ROWS_A_STATEMENT):
                driver_executemany(connection, sql, some)
            return

    def referring(r: IndexRow) -> tuple[Any, ...]:  # a row whose reference is text
        reference = r[11]
        key = targets.get(reference)
        if key is not None:  # the target's key instead of the text
            reference = None
        return (
            r[1], r[8], r[9], r[10], key, params[r[0], r[2], r[3]], systems[r[4]],
            kinds[r[3]], r[5], r[6], r[7], reference, r[12], r[13], r[14],
        )  # fmt: skip

    # fmt: off
    written = [
        (
            r[1], r[8], r[9], r[10], None, params[r[0], r[2], r[3]], systems[r[4]],
            kinds[r[3]], r[5], r[6], r[7], None, r[12], r[13], r[14],
        )
        if (ref := r[11]) is None
        else (  # named by key already (``_named_by_key``)
            r[1], r[8], r[9], r[10], ref, params[r[0], r[2], r[3]], systems[r[4]],
            kinds[r[3]], r[5], r[6], r[7], None, r[12], r[13], r[14],
        )
        if ref.__class__ is int
        else referring(r)
        for r in rows
    ]
    # fmt: on
    for n in typed:
        w = written[n]
        written[n] = (*w[:3], systems[rows[n][10]], *w[4:])
    postgres = session.get_bind().dialect.name != "sqlite"
    if postgres:
        # PostgreSQL: the references named by key (decision 0088) and the token and string
        # values that can move (decisions 0103, 0114: ``search_tokens.moves``,
        # ``string_moves``) are arrays of the resource's row of ``search_terms``, not rows.
        # A transient row is deleted again before the commit: its arrays would only collide
        # with the resource's stored row
        keyed = [w for w in written if w[4] is not None]
        movable = {
            pid for (_, name, kind), pid in params.items() if kind == "token" and moves(name)
        }
        # a token row moves when its code is whole and it carries nothing else (0043's rule)
        toks = [
            w
            for w in written
            if w[5] in movable and w[8] is not None and w[12] is None and w[13] is None
            and w[9] is None and w[3] is None
        ]  # fmt: skip
        # an address row moves when its texts are whole (0044's rule). A transient write keeps
        # it a row: a refused value is then located by the rows' trial
        # (adapter/store/refusals.py), as when it was always one
        places = {
            pid for (_, name, kind), pid in params.items()
            if kind == "string" and string_param_moves(name)
        }  # fmt: skip
        strs = [
            w
            for w in written
            if w[5] in places and w[7] == STRING_KIND and w[8] is None
            and string_moves(w[9], w[10], w[13])
        ] if not transient else []  # fmt: skip
        # a name's presence marker (decision 0117), for its values cut to a key too
        named = {
            pid for (_, name, kind), pid in params.items() if kind == "string" and marked(name)
        } if not transient else set()  # fmt: skip
        marks = {(w[0], w[5]) for w in written if w[5] in named} if named else set()
        # a reference with no value (a display only) is its presence marker in the array
        # (decision 0124); a transient write keeps it a row, as the address rows above
        bare = [w for w in written if w[7] == REFERENCE_KIND and _bare(w)] if not transient else []
        if keyed or toks or strs or marks or bare:
            gone = {id(w) for w in keyed}
            gone.update(id(w) for w in toks)
            gone.update(id(w) for w in strs)
            gone.update(id(w) for w in bare)
            written = [w for w in written if id(w) not in gone]
            if not transient:
                refs = dict(term_rows((w[0], w[5], w[4]) for w in (*keyed, *bare)))
                values = [(w[0], (w[5], w[6] or 0, w[8], w[10] or "")) for w in toks]
                values += [(w[0], string_token(w[5], w[9], w[10])) for w in strs]
                values += [(rkey, valued_token(pid)) for rkey, pid in marks]
                tokens = term_tokens(session, values)
                terms = [
                    (rkey, refs.get(rkey, []), tokens.get(rkey, []))
                    for rkey in dict.fromkeys([*refs, *tokens])
                ]
                if replacing:
                    terms = keep_terms(session, terms, replacing)
                insert_tuples(session, search_terms, ("resource_key", "refs", "toks"), terms)
        elif replacing and not transient:
            keep_terms(session, [], replacing)
    numbers: dict[int, int] = {}  # resource key -> its rows numbered so far
    numbered = []
    for w in written:
        n = numbers.get(w[0], 0)
        numbers[w[0]] = n + 1
        numbered.append((-1 - n if transient else n, *w))
    if postgres and len(numbered) > ROWS_MAX and max(numbers.values()) > ROWS_MAX:
        raise ValueError(
            f"a resource has more than {ROWS_MAX} search index rows, more than the store"
            " numbers on PostgreSQL (decision 0098)"
        )
    if replacing:
        numbered = keep_stored(session, numbered, replacing)
    elif not numbered:
        return
    insert_tuples(session, _index, ("row_id", *_INDEX_COLUMNS), numbered)


def _message_targets(session: Session, message_id: str | None) -> dict[str, int]:
    """``Type/id`` -> resource key of the resources ``save_resources`` was given for
    ``message_id`` so far in the session's innermost transaction (savepoint), to be filled
    by the call: a message's Provenance, saved by a later call, refers to every resource
    the message made. Begun afresh for another message or transaction, so that no key of
    a rolled back savepoint is ever named (decision 0083)."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    held = session.info.get(_NAMED)
    if (
        message_id is not None
        and transaction is not None
        and held is not None
        and held[0] is transaction
        and held[1] == message_id
    ):
        return held[2]
    targets: dict[str, int] = {}
    session.info[_NAMED] = (transaction, message_id, targets)
    return targets


def _add_targets(targets: dict[str, int], keys: Iterable[tuple[str, str, int]]) -> None:
    """Add ``Type/id`` -> key for those of ``keys`` (type, id, key) that an index row may
    name by key (``local_target``): ``_named_by_key`` then needs no other check."""
    for rtype, rid, key in keys:
        reference = f"{rtype}/{rid}"
        if local_target(reference) is not None:
            targets[reference] = key


def _named_by_key(rows: list[IndexRow], keys: dict[str, int]) -> list[IndexRow]:
    """``rows`` with a reference to one of ``keys`` (``Type/id`` -> resource key, only
    references ``target_keys`` would name by key: ``_add_targets``) as that key, an int in
    the ``reference`` place (``_insert_index_tuples`` writes it as ``target_key``). One
    dictionary lookup per row (decision 0083)."""
    at = _REFERENCE
    hits = [n for n, r in enumerate(rows) if r[at] in keys]
    if not hits:
        return rows
    out = list(rows)
    for n in hits:
        r = rows[n]
        out[n] = (*r[:at], keys[r[at]], *r[at + 1 :])
    return out


def _index_tuples(
    rtype: str, rkey: int, values: Iterable[IndexValue], named: dict[str, int] | None = None
) -> list[IndexRow]:
    """The rows of a resource's values, an identifier's first type on its row (``_typed``);
    ``named``: a reference to one of these keys as the key, as ``_named_by_key`` gives it
    (in the same pass: decision 0143)."""
    rows: list[IndexRow] = []
    for v in values:
        tail = v.row  # ``_index_tuple``'s, inline
        if tail is None:
            tail = v.row = _index_tail(v)
        row = (rtype, rkey, *tail)
        if named and (ref := tail[_TAIL_REFERENCE]) is not None and ref in named:
            row = (rtype, rkey, *tail[:_TAIL_REFERENCE], named[ref], *tail[_TAIL_REFERENCE + 1 :])
        if row[3] == "token" and rows and row[2].endswith(OF_TYPE) and (t := _typed(rows[-1], row)):
            rows[-1] = t
        else:
            rows.append(row)
    return rows


def _typed(identifier: IndexRow, of_type: IndexRow) -> IndexRow | None:
    """The identifier's row carrying its type: ``value`` the type's code, ``value_number``
    the type's system (its text; ``_insert_index_tuples`` writes its id), when ``of_type``
    is the first ``:of-type`` row of the identifier row before it and its code is whole
    (not cut to a key). ``identifier:of-type`` reads both forms (adapter/store/search.py,
    decision 0098); a second type of one identifier stays a row."""
    if (
        identifier[6] is None  # no type carried yet (``value`` is None in a token row)
        and identifier[10] is None
        and of_type[12] is None  # the type's code whole
        and identifier[3] == "token"
        and identifier[2] == of_type[2][: -len(OF_TYPE)]
        and (identifier[12] or identifier[5]) == of_type[6]  # the identifier's value
    ):
        return (*identifier[:6], of_type[5], *identifier[7:10], of_type[4], *identifier[11:])
    return None


def index_rows(rtype: str, rkey: int, values: Iterable[IndexValue]) -> list[dict[str, Any]]:
    """The search_index rows of a resource's values as the store writes them (an
    identifier's first type on its row, ``_typed``: its system as text in
    ``value_number``), each as ``index_row`` gives one (the benches' COPY loaders)."""
    return [dict(zip(_INDEX_ROW_KEYS, t, strict=True)) for t in _index_tuples(rtype, rkey, values)]


def index_row(rtype: str, rkey: int, v: IndexValue) -> dict[str, Any]:
    """The search_index row of one value: long texts cut to bounded keys (index_keys);
    ``system`` stays text until ``insert_index_rows`` gives its id (decision 0059)."""
    return dict(zip(_INDEX_ROW_KEYS, _index_tuple(rtype, rkey, v), strict=True))


def _index_tuple(rtype: str, rkey: int, v: IndexValue) -> IndexRow:
    """``index_row``'s values, in ``_INDEX_ROW_KEYS`` order (the part after the resource
    derived once per value: ``IndexValue.row``)."""
    tail = v.row
    if tail is None:
        tail = v.row = _index_tail(v)
    return (rtype, rkey, *tail)


def _index_tail(v: IndexValue) -> tuple[Any, ...]:
    """``_index_tuple``'s values after the resource type and key."""
    code, value_norm, reference = v.code, v.value_norm, v.reference
    # a value of KEY_CHARS characters or more is cut to its key (index_keys); most are short
    code_full = value_norm_full = reference_full = None
    if code is not None and len(code) >= KEY_CHARS:
        code, code_full = head_key(code)
    if value_norm is not None and len(value_norm) >= KEY_CHARS:
        value_norm, value_norm_full = head_key(value_norm)
    if reference is not None and len(reference) >= KEY_CHARS:
        reference, reference_full = tail_key(reference)
    kind = v.kind
    return (
        v.param,
        kind,
        v.system,
        code,
        # a token's text is searched by its normalised form (``:text``): the text as written
        # is kept only where a search compares it (strings' :exact, identifier:of-type)
        None if kind == "token" and not v.param.endswith(OF_TYPE) else v.value,
        value_norm,
        v.date_start,
        v.date_end,
        v.number,
        reference,
        code_full,
        value_norm_full,
        reference_full,
    )


_DELETE_CHUNK = 500  # keys per DELETE: well under SQLite's bound parameter limit


# PostgreSQL: the keys as one array behind an InitPlan, so that the planner never sees how
# many there are. An IN list of ~200 constants on a search index never analysed (a young
# table; autovacuum not yet run, or off) is estimated to match a large share of the table
# and deleted by a Seq Scan of all of it (31-77 ms a drain batch at 4,000 messages, growing
# with the table; decision 0090); an array of unknown length keeps the plan on
# ix_search_index_resource, and one statement text for every count is prepared once.
_PG_DELETE_INDEX = text(
    "DELETE FROM search_index "
    "WHERE resource_key = ANY(ARRAY(SELECT unnest(CAST(:keys AS BIGINT[]))))"
)


def _delete_index_rows(session: Session, rkeys: list[int]) -> None:
    """Delete the index rows of the resources with these resource keys."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if rkeys and postgresql:
        session.execute(_PG_DELETE_INDEX, {"keys": rkeys})
    for start in range(0, len(rkeys), _DELETE_CHUNK):
        chunk = rkeys[start : start + _DELETE_CHUNK]
        if not postgresql:
            session.execute(delete(_index).where(_index.c.resource_key.in_(chunk)))
        if uses_terms(session):
            delete_terms(session, chunk)


def reindex(session: Session, resource_type: str | None = None, zone: tzinfo = DEFAULT_ZONE) -> int:
    """Rebuild the index rows (after search parameters were added); returns resources done."""
    query = select(_resource.c.resource_type, _resource.c.resource_key, _resource.c.body).where(
        _resource.c.deleted.is_(False)
    )
    if resource_type:
        query = query.where(_resource.c.resource_type == resource_type)
    done = 0
    for row in session.execute(query).all():
        rows = _index_tuples(row.resource_type, row.resource_key, index_values(row.body, zone))
        _insert_index_tuples(session, rows, replacing={row.resource_key})
        done += 1
    return done


def read_resource(session: Session, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    """The current version, or None when unknown or deleted."""
    row = session.execute(
        select(_resource.c.body, _resource.c.deleted).where(
            _resource.c.resource_type == resource_type, _resource.c.id == resource_id
        )
    ).first()
    if row is None or row.deleted:
        return None
    return row.body


def resource_state(session: Session, resource_type: str, resource_id: str) -> Resource | None:
    """The resource row (version, deleted flag, last change) without caring about deletion."""
    return session.get(Resource, (resource_type, resource_id))


def read_version(
    session: Session, resource_type: str, resource_id: str, version_id: int
) -> dict[str, Any] | None:
    """One version, or None: the current one is the resource row, the older ones are in
    the history (decision 0075)."""
    current = session.execute(
        select(_resource.c.body, _resource.c.version_id).where(
            _resource.c.resource_type == resource_type, _resource.c.id == resource_id
        )
    ).first()
    if current is None or version_id < 1 or version_id > current.version_id:
        return None
    if current.version_id == version_id:
        return current.body
    return session.execute(
        select(_version.c.body).where(
            _version.c.resource_type == resource_type,
            _version.c.id == resource_id,
            _version.c.version_id == version_id,
        )
    ).scalar_one_or_none()


def read_history(
    session: Session, resource_type: str, resource_id: str, *, count: int = 100, offset: int = 0
) -> tuple[int, list[Row[Any]]]:
    """Total and a page of versions of one resource, newest first."""
    query = HistoryQuery(resource_type, resource_id, count=count, offset=offset)
    return read_history_page(session, query)
