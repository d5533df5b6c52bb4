"""Benchmark: ORU^R01 messages/second through Pipeline.ingest (parse + map + check + store),
against a hand-written floor, on SQLite (WAL, a temp file) and PostgreSQL.

    .venv/bin/python bench/bench_ingest.py [--rounds 5] [--copies 2] [--pg URL | --no-pg]

Input: every ORU fixture under fixtures/hl7v2/oru (all four source systems), each made
unique per copy (MSH-10 and the order/specimen numbers ORC-2/3, OBR-2/3, SPM-2 get a suffix)
so that neither the duplicate check nor unchanged-resource detection short-circuits the work;
patients repeat, as they do in a real feed.

Rows, each timed in every round (the rows take turns, so machine noise hits them alike):
  pipeline   the real Pipeline.ingest, one transaction per message
  floor      naive str.split tokenizer + the same kind of resource dicts built directly in
             Python + orjson + one executemany per table per transaction (one message in
             its own transaction; the bulk floor, 100 messages), the same tables and columns
             and the same stored forms (16-byte content hashes and message ids, PostgreSQL's
             references by key as search_terms arrays), unchanged resources not rewritten
  stages     parse / map / check / store timed separately on other copies (store = the
             duplicate lookup + the transaction the pipeline runs after translating)
Medians over the rounds are printed. PostgreSQL: a temporary schema in the database at
--pg (default 127.0.0.1:5432/test), dropped at the end; skipped when not reachable.

--slices N: instead of the rounds, N slices of bulk ingest into one growing store (the flat
cost goal of issue 14). Around every slice the floor's bulk of 1,000 of its messages into an
empty store of the same backend is timed (bench/slice_reference.py, decision 0135): each
slice's cost is also printed as a ratio to it, and the verdict on those ratios (least-squares
line, first to last slice) is the one host load does not move; --no-reference skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from adapter.consortium import Consortium, Facility, load_consortium
from adapter.heap import settled
from adapter.hl7v2 import codec_for, parse_hl7v2
from adapter.pipeline import Outcome, Pipeline, steps
from adapter.pipeline.checks import check_resources
from adapter.pipeline.readers import read_document
from adapter.pipeline.receipt import Receipt
from adapter.routing import destinations_for
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import create_message, find_message, make_engine, migrate
from adapter.store import session_factory as make_session_factory
from adapter.store.body_codec import pack
from adapter.store.models import KINDS
from adapter.store.outbox.enqueue import order_hash
from bench.pg_schema import maintain_own_schema
from bench.slice_reference import Cost, Reference, fitted_growth

ROOT = Path(__file__).resolve().parent.parent
ORU = ROOT / "fixtures" / "hl7v2" / "oru"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- input: the fixtures, made unique -------------------------------------------------------------


@dataclass(slots=True)
class Fixture:
    source: str
    name: str
    text: str  # decoded, segments separated by \r
    codec: str


def load_fixtures(consortium: Consortium) -> list[Fixture]:
    known = {s.id for f in consortium.facilities for s in f.sources}
    out = []
    for path in sorted(ORU.glob("*/*.hl7")):
        if path.parent.name in known:
            message = parse_hl7v2(path.read_bytes())
            out.append(Fixture(path.parent.name, path.name, message.text, message.charset))
    return out


# (segment, field number) whose first components identify the message, order or specimen
_UNIQUE_FIELDS = {"MSH": (10,), "ORC": (2, 3), "OBR": (2, 3), "SPM": (2,)}


def variant(fixture: Fixture, tag: str) -> bytes:
    """The fixture with ``tag`` appended to its message id and order/specimen numbers."""
    lines = fixture.text.split("\r")
    fs = lines[0][3]
    comp, sub = lines[0][4], lines[0][7]
    out = []
    for line in lines:
        fields = line.split(fs)
        numbers = _UNIQUE_FIELDS.get(fields[0], ())
        for number in numbers:
            index = number - 1 if fields[0] == "MSH" else number  # MSH-1 is the separator
            if index < len(fields) and fields[index]:
                parts = fields[index].split(comp)
                for c in range(min(2, len(parts))):  # EI: .1; EIP (SPM-2): .1.1 and .2.1
                    if parts[c]:
                        subs = parts[c].split(sub)
                        subs[0] += tag
                        parts[c] = sub.join(subs)
                fields[index] = comp.join(parts)
        out.append(fs.join(fields))
    return "\r".join(out).encode(fixture.codec)


def batch(fixtures: list[Fixture], copies: int, prefix: str) -> list[tuple[str, bytes]]:
    return [(f.source, variant(f, f"{prefix}{n}")) for n in range(copies) for f in fixtures]


# -- the floor -----------------------------------------------------------------------------------

NS = uuid.UUID("8c1f5a4e-0d6b-4a57-9a55-3c0f0e6f1b01")
TZ = "+08:00"
SEX = {"M": "male", "F": "female", "1": "male", "2": "female", "0": "unknown", "9": "unknown"}
OBS_STATUS = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "R": "preliminary",
}


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(NS, "|".join(parts)))


def _ts(value: str) -> str | None:
    """HL7 TS -> FHIR dateTime (naive: digits only, local zone); a placeholder such as
    00000000 is no date, as in the pipeline (the database refuses month 00)."""
    v = value[:14]
    if not v[:8].isdigit() or v[4:6] == "00" or v[6:8] == "00":
        return None
    if len(v) >= 14:
        return f"{v[:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}{TZ}"
    if len(v) >= 8:
        return f"{v[:4]}-{v[4:6]}-{v[6:8]}"
    return None


def _num(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(slots=True)
class Tables:
    """Plain dicts from the mapping set's code tables (loaded once, not timed)."""

    loinc: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    ucum: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)


def floor_translate(raw: bytes, facility: Facility, tables: Tables) -> list[dict[str, Any]]:
    """Naive tokenizer and direct dict building, in the shape the mappings produce."""
    header = raw[: raw.find(b"\r")].decode("latin-1").split("|")
    codec = codec_for(header[17]) if len(header) > 17 and header[17] else None
    if codec is None:
        try:
            text_ = raw.decode("utf-8")
        except UnicodeDecodeError:
            text_ = raw.decode("gb18030")
    else:
        text_ = raw.decode(codec)
    segments = [line.split("|") for line in text_.split("\r") if line]
    msh = segments[0]
    ns = facility.identifier_system
    org_id = _uid("org", facility.id)
    org_ref = {"reference": f"Organization/{org_id}"}
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Organization",
            "id": org_id,
            "identifier": [{"system": i.system, "value": i.value} for i in facility.identifiers],
            "active": True,
            "name": facility.name,
        }
    ]
    patient_ref: dict[str, str] = {}
    report: dict[str, Any] | None = None
    order_no = specimen_ref = effective = issued = ""
    last_obs: dict[str, Any] | None = None
    for seg in segments[1:]:
        name = seg[0]
        if name == "PID":
            ids = [r.split("^") for r in seg[3].split("~")] if len(seg) > 3 else []
            key = next((r[0] for r in ids if len(r[0]) in (15, 18)), ids[0][0] if ids else "")
            pid = _uid("patient", key)
            pn = seg[5].split("^") if len(seg) > 5 else [""]
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": pid,
                "identifier": [{"system": ns("patient"), "value": r[0]} for r in ids if r[0]],
                "active": True,
                "name": [
                    {"use": "official", "text": "".join(pn[:2]), "family": pn[0], "given": pn[1:2]}
                ],
            }
            if len(seg) > 8 and seg[8] in SEX:
                patient["gender"] = SEX[seg[8]]
            if len(seg) > 7 and (birth := _ts(seg[7][:8])):
                patient["birthDate"] = birth
            if len(seg) > 13 and seg[13]:
                patient["telecom"] = [{"system": "phone", "value": seg[13].split("^")[0]}]
            if len(seg) > 11 and seg[11]:
                a = seg[11].split("^")
                patient["address"] = [
                    {
                        "text": "".join(reversed(a[:4])),
                        "line": a[:1],
                        "city": a[2] if len(a) > 2 else None,
                    }
                ]
            out.append(patient)
            patient_ref = {"reference": f"Patient/{pid}"}
        elif name == "OBR":
            order_no = (seg[3] or seg[2]).split("^")[0]
            code = seg[4].split("^")
            effective = _ts(seg[7]) if len(seg) > 7 else None
            issued = (_ts(seg[22]) if len(seg) > 22 and seg[22] else None) or _ts(msh[6])
            sid = _uid("specimen", facility.id, order_no)
            specimen_ref = {"reference": f"Specimen/{sid}"}
            spm = seg[15].split("^") if len(seg) > 15 else [""]
            out.append(
                {
                    "resourceType": "Specimen",
                    "id": sid,
                    "identifier": [{"system": ns("specimen"), "value": order_no}],
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0487",
                                "code": spm[0],
                            }
                        ],
                        "text": spm[-1],
                    },
                    "subject": patient_ref,
                    "collection": {"collectedDateTime": effective},
                }
            )
            report = {
                "resourceType": "DiagnosticReport",
                "id": _uid("report", facility.id, order_no),
                "identifier": [{"system": ns("lab-report"), "value": order_no}],
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                "code": "LAB",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {
                            "system": ns("lab-panel"),
                            "code": code[0],
                            "display": code[1] if len(code) > 1 else None,
                        }
                    ],
                    "text": code[1] if len(code) > 1 else code[0],
                },
                "subject": patient_ref,
                "effectiveDateTime": effective,
                "issued": issued,
                "performer": [org_ref],
                "specimen": [specimen_ref],
                "result": [],
            }
            out.append(report)
        elif name == "OBX" and report is not None:
            item = seg[3].split("^")
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "id": _uid("obs", facility.id, order_no, item[0], seg[4]),
                "identifier": [{"system": ns("lab-result"), "value": f"{order_no}-{item[0]}"}],
                "status": OBS_STATUS.get(seg[11], "final") if len(seg) > 11 else "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [
                        {
                            "system": ns("lab-item"),
                            "code": item[0],
                            "display": item[1] if len(item) > 1 else None,
                        }
                    ],
                    "text": item[1] if len(item) > 1 else item[0],
                },
                "subject": patient_ref,
                "effectiveDateTime": (_ts(seg[14]) if len(seg) > 14 and seg[14] else None)
                or effective,
                "issued": issued,
                "performer": [org_ref],
                "specimen": specimen_ref,
            }
            if loinc := tables.loinc.get(item[0]):
                obs["code"]["coding"].append(
                    {"system": "http://loinc.org", "code": loinc[0], "display": loinc[1]}
                )
            unit = seg[6].split("^")[0] if len(seg) > 6 else ""
            value = seg[5].split("^")[0] if len(seg) > 5 else ""
            number = _num(value) if seg[2] in ("NM", "SN") else None
            if number is not None:
                obs["valueQuantity"] = {
                    "value": number,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": tables.ucum.get(unit, unit),
                }
            elif value:
                obs["valueString"] = value
            if len(seg) > 8 and (flag := tables.flags.get(seg[8])):
                obs["interpretation"] = [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "v3-ObservationInterpretation",
                                "code": flag,
                            }
                        ],
                        "text": seg[8],
                    }
                ]
            if len(seg) > 7 and "-" in seg[7]:
                low, _, high = seg[7].partition("-")
                obs["referenceRange"] = [
                    {
                        "low": {"value": _num(low), "unit": unit},
                        "high": {"value": _num(high), "unit": unit},
                        "text": seg[7],
                    }
                ]
            report["result"].append({"reference": f"Observation/{obs['id']}"})
            out.append(obs)
            last_obs = obs
        elif name == "NTE" and last_obs is not None and len(seg) > 3:
            last_obs.setdefault("note", []).append({"text": seg[3]})
    return out


_FLOOR_SYSTEMS: dict[str, int] = {}


def _floor_system_id(system: str | None) -> int | None:
    """The floor's system ids (decision 0059): kept in memory only, as the store's cache
    holds them once known (the floor writes no search_system rows)."""
    if system is None:
        return None
    return _FLOOR_SYSTEMS.setdefault(system, len(_FLOOR_SYSTEMS) + 1)


_FLOOR_PARAMS: dict[tuple[str, str, str], int] = {}


def _floor_param_id(rtype: str, param: str, kind: str) -> int:
    """The floor's (type, param, kind) ids (decision 0071), in memory like its systems."""
    return _FLOOR_PARAMS.setdefault((rtype, param, kind), len(_FLOOR_PARAMS) + 1)


def floor_index_rows(
    rtype: str, rid: int, resource: dict[str, Any], sqlite: bool = False
) -> list[tuple[Any, ...]]:
    """``_floor_rows`` as the table holds them: (type, param, kind) as its id (0071); on
    SQLite the dates as integer microseconds (0073)."""
    rows = [
        (r[1], _floor_param_id(r[0], r[2], r[3]), KINDS[r[3]], *r[4:])
        for r in _floor_rows(rtype, rid, resource)
    ]
    if not sqlite:
        return rows
    return [(*r[:7], _floor_micros(r[7]), _floor_micros(r[8]), *r[9:]) if r[7] else r for r in rows]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor_micros(value: str | None) -> int | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if moment is None:
        return None
    delta = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _floor_rows(rtype: str, rid: int, resource: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Index rows by a generic walk: Coding/Identifier -> token, reference, dates, numbers."""
    rows: list[tuple[Any, ...]] = []

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            if "reference" in node:
                rows.append(
                    (
                        rtype,
                        rid,
                        key,
                        "reference",
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        node["reference"],
                    )
                )
            elif "system" in node and ("code" in node or "value" in node):
                rows.append(
                    (
                        rtype,
                        rid,
                        key,
                        "token",
                        _floor_system_id(node.get("system")),
                        node.get("code") or node.get("value"),
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                )
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str) and key in (
            "effectiveDateTime",
            "issued",
            "birthDate",
            "collectedDateTime",
        ):
            rows.append(
                (rtype, rid, key, "date", None, None, None, None, node[:19], node[:19], None, None)
            )
        elif key in ("family", "text") and isinstance(node, str):
            rows.append(
                (
                    rtype,
                    rid,
                    key,
                    "string",
                    None,
                    None,
                    node,
                    node.casefold(),
                    None,
                    None,
                    None,
                    None,
                )
            )

    walk(resource, "")
    return rows


class Floor:
    """Stores a transaction's messages with one executemany per table (since 2026-12-06;
    before, one per table per message: seven round trips a message on PostgreSQL, and
    every resource taken for changed, its hash being compared in the wrong form)."""

    def __init__(self, engine: Engine, consortium: Consortium, tables: Tables) -> None:
        self.conn = engine.raw_connection()
        self.sqlite = engine.dialect.name == "sqlite"
        self.consortium = consortium
        self.tables = tables
        self.p = "?" if self.sqlite else "%s"
        self._top = 0  # the highest resource key given (SQLite)
        self._destinations: dict[str, int] = {}  # outbox_destination ids (decision 0079)
        self._facilities: dict[str, int] = {}  # facility_name keys (decision 0118)

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.p)

    def _stamp(self, moment: datetime) -> Any:
        return moment.replace(tzinfo=None).isoformat(" ") if self.sqlite else moment

    def _instant(self, moment: datetime) -> Any:
        """An outbox instant as the store writes it: integer microseconds on SQLite."""
        if not self.sqlite:
            return moment
        return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    def _destination_id(self, cur: Any, name: str) -> int:
        """The destination's ``outbox_destination`` id (created once, as the store does)."""
        if name not in self._destinations:
            cur.execute(
                self._sql(
                    "INSERT INTO outbox_destination (destination) VALUES (?) ON CONFLICT DO NOTHING"
                ),
                (name,),
            )
            cur.execute(
                self._sql("SELECT destination_id FROM outbox_destination WHERE destination = ?"),
                (name,),
            )
            self._destinations[name] = cur.fetchone()[0]
        return self._destinations[name]

    def _facility_key(self, cur: Any, name: str) -> int:
        """The facility's ``facility_name`` key (created once, as the store does)."""
        if name not in self._facilities:
            cur.execute(
                self._sql("INSERT INTO facility_name (name) VALUES (?) ON CONFLICT DO NOTHING"),
                (name,),
            )
            cur.execute(self._sql("SELECT facility_key FROM facility_name WHERE name = ?"), (name,))
            self._facilities[name] = cur.fetchone()[0]
        return self._facilities[name]

    def _new_keys(self, cur: Any, count: int) -> list[int]:
        """Resource keys as the store gives them (adapter/store/resource_keys.py); on
        SQLite the transaction holds the write lock."""
        if not count:
            return []
        if not self.sqlite:
            cur.execute("SELECT nextval('resource_key_seq') FROM generate_series(1, %s)", (count,))
            return [row[0] for row in cur.fetchall()]
        cur.execute("SELECT coalesce(max(resource_key), 0) FROM resource")
        top = max(cur.fetchone()[0], self._top)
        self._top = top + count
        return list(range(top + 1, top + count + 1))

    def ingest_many(self, messages: list[tuple[str, bytes]], per: int = 100) -> int:
        """The true floor of bulk work: ``per`` messages per transaction, each table written
        once per transaction (one executemany of all its rows), as a hand-written bulk loader
        would. One statement per table per message cost a round trip each: on PostgreSQL
        seven per message, most of the old floor's time under load."""
        return sum(
            self._transaction(messages[start : start + per])
            for start in range(0, len(messages), per)
        )

    def ingest(self, source: str, raw: bytes) -> int:
        """One message in a transaction of its own (the floor of ``Pipeline.ingest``)."""
        return self._transaction([(source, raw)])

    def _transaction(self, messages: list[tuple[str, bytes]]) -> int:
        cur = self.conn.cursor()
        if self.sqlite:
            cur.execute("BEGIN IMMEDIATE")
        done = self._store(cur, messages)
        if self.sqlite:
            cur.execute("COMMIT")
        else:
            self.conn.commit()
        cur.close()
        return done

    def _store(self, cur: Any, messages: list[tuple[str, bytes]]) -> int:
        """Translate ``messages`` and write their rows, each table once."""
        translated = []
        for source, raw in messages:
            facility, _ = self.consortium.source(source)  # type: ignore[misc]
            translated.append((source, raw, facility, floor_translate(raw, facility, self.tables)))
        moment = datetime.now(UTC)
        now = self._stamp(moment)
        instant = self._instant(moment)
        by_type: dict[str, set[str]] = {}
        for *_, resources in translated:
            for r in resources:
                by_type.setdefault(r["resourceType"], set()).add(r["id"])
        # by primary key (resource_type, id): an id alone is no key lookup on SQLite
        where = " OR ".join(
            f"(resource_type = ? AND id IN ({','.join('?' * len(ids))}))"
            for ids in by_type.values()
        )
        cur.execute(
            self._sql(
                "SELECT resource_type, id, content_hash, version_id, resource_key FROM resource "
                f"WHERE {where}"
            ),
            [v for rtype, ids in by_type.items() for v in (rtype, *ids)],
        )
        # (type, id) -> [hash, version, key, stored before this batch]
        state: dict[tuple[str, str], list[Any]] = {
            (row[0], row[1]): [self._digest(row[2]), row[3], row[4], True] for row in cur.fetchall()
        }
        fresh = sum(
            1
            for *_, resources in translated
            for r in resources
            if (r["resourceType"], r["id"]) not in state
        )  # an upper bound: a resource new to the store may come twice in the batch
        keys = iter(self._new_keys(cur, fresh))  # the index rows name it (decision 0055)
        inbound, outbox, history = [], [], []
        new: dict[tuple[str, str], tuple[Any, ...]] = {}
        changed: dict[tuple[str, str], tuple[Any, ...]] = {}
        copied: list[tuple[str, str]] = []  # stored versions that become history rows
        index: dict[int, tuple[str, dict[str, Any]]] = {}  # key -> its latest version
        stale: list[int] = []
        for source, raw, facility, resources in translated:
            message_id = uuid.uuid4().bytes  # UuidText's stored form
            fkey = self._facility_key(cur, facility.id)
            for r in resources:
                canonical = orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
                digest = hashlib.sha256(canonical).digest()[:16]
                at = (r["resourceType"], r["id"])
                old = state.get(at)
                if old is not None and old[0] == digest:
                    continue
                version = 1 if old is None else old[1] + 1
                # stored as the store stores it: a zstd frame (decision 0049)
                body = pack(
                    {**r, "meta": {"versionId": str(version), "lastUpdated": moment.isoformat()}}
                )
                patient = r["subject"]["reference"] if "subject" in r else None
                row = (version, now, digest, body, message_id, patient, fkey, *at)
                if old is None:
                    rkey = next(keys)
                    state[at] = [digest, version, rkey, False]
                    new[at] = (*row, rkey)
                else:
                    rkey = old[2]
                    old[0], old[1] = digest, version
                    superseded = new.get(at) or changed.get(at)
                    if superseded is not None:  # a version written in this batch: history
                        history.append(
                            (*at, superseded[0], now, False, superseded[3], superseded[4])
                        )
                    elif old[3]:
                        copied.append(at)
                        stale.append(rkey)
                    if at in new:
                        new[at] = (*row, rkey)
                    else:
                        changed[at] = row
                index[rkey] = (r["resourceType"], r)
                for destination in destinations_for(
                    self.consortium, facility.id, r["resourceType"]
                ):
                    outbox.append(
                        (
                            self._destination_id(cur, destination),
                            rkey,  # the resource's key and hashed order key (decision 0084)
                            version,
                            order_hash(patient or f"{r['resourceType']}/{r['id']}"),
                            1,  # pending (OUTBOX_STATE_CODES)
                            0,
                            instant,
                            instant,
                            message_id,
                        )
                    )
            refs = orjson.dumps([f"{r['resourceType']}/{r['id']}" for r in resources]).decode()
            inbound.append(
                (
                    message_id,
                    source,
                    facility.id,
                    now,
                    None,
                    "hl7v2",
                    "utf-8",
                    hashlib.sha256(raw).hexdigest(),
                    raw,
                    len(raw),
                    "processed",
                    "[]",
                    refs,
                    now,
                    1,
                )
            )
        known = {f"{rtype}/{rid}": v[2] for (rtype, rid), v in state.items()}
        rows, terms = self._index_rows(index, known)
        cur.executemany(
            self._sql(
                "INSERT INTO inbound_message (id, source_system, facility_id, received_at, "
                "content_type, detected_format, encoding, sha256, raw, size, status, issues, "
                "resources, processed_at, attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            ),
            inbound,
        )
        if new:
            cur.executemany(
                self._sql(
                    "INSERT INTO resource (version_id, last_updated, content_hash, body, "
                    "message_id, patient_key, facility_key, resource_type, id, resource_key, "
                    "deleted) VALUES (?,?,?,?,?,?,?,?,?,?,FALSE)"
                ),
                list(new.values()),
            )
        if copied:
            cur.executemany(  # the superseded version becomes a history row (decision 0075)
                self._sql(
                    "INSERT INTO resource_version (resource_type, id, version_id, last_updated, "
                    "deleted, body, message_id) SELECT resource_type, id, version_id, "
                    "last_updated, deleted, body, message_id FROM resource "
                    "WHERE resource_type=? AND id=?"
                ),
                copied,
            )
        if history:
            cur.executemany(
                self._sql(
                    "INSERT INTO resource_version (resource_type, id, version_id, last_updated, "
                    "deleted, body, message_id) VALUES (?,?,?,?,?,?,?)"
                ),
                history,
            )
        if changed:
            cur.executemany(
                self._sql(
                    "UPDATE resource SET version_id=?, last_updated=?, content_hash=?, body=?, "
                    "message_id=?, patient_key=?, facility_key=? WHERE resource_type=? AND id=?"
                ),
                list(changed.values()),
            )
        if stale:
            cur.executemany(
                self._sql("DELETE FROM search_index WHERE resource_key=?"), [(k,) for k in stale]
            )
            if not self.sqlite:
                cur.executemany(
                    "DELETE FROM search_terms WHERE resource_key=%s", [(k,) for k in stale]
                )
        if rows:
            cur.executemany(  # the rows begin with their row_id (decisions 0085, 0098)
                self._sql(
                    "INSERT INTO search_index (row_id, resource_key, param_id, "
                    "kind, system_id, code, value, value_norm, value_date_start, value_date_end,"
                    " value_number, reference, target_key) VALUES (?,"
                    "?,?,?,?,?,?,?,?,?,?,?,?)"
                ),
                rows,
            )
        if terms:
            cur.executemany("INSERT INTO search_terms (resource_key, refs) VALUES (%s, %s)", terms)
        if outbox:
            cur.executemany(
                self._sql(
                    "INSERT INTO outbox (destination_id, resource_key, version_id, "
                    "order_key, state, attempts, next_attempt_at, created_at, "
                    "message_id) VALUES (?,?,?,?,?,?,?,?,?)"
                ),
                outbox,
            )
        return sum(len(resources) for *_, resources in translated)

    def _index_rows(
        self, latest: dict[int, tuple[str, dict[str, Any]]], known: dict[str, int]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[int, list[int]]]]:
        """The index rows of each resource's latest version, references to a stored
        resource by its key (decision 0080). PostgreSQL: those references as the
        resource's ``search_terms`` array instead of rows (decision 0088)."""
        rows: list[tuple[Any, ...]] = []
        terms: list[tuple[int, list[int]]] = []
        at = 10  # the reference
        for rkey, (rtype, resource) in latest.items():
            mine = floor_index_rows(rtype, rkey, resource, self.sqlite)
            # each row numbered among its resource's rows (decisions 0085, 0098)
            if self.sqlite:
                rows.extend(
                    (n, *i[:at], None, key) if (key := known.get(i[at])) else (n, *i, None)
                    for n, i in enumerate(mine)
                )
                continue
            refs = []
            kept = len(rows)
            for i in mine:
                key = known.get(i[at])
                if key is None:
                    rows.append((len(rows) - kept, *i, None))
                else:
                    refs.append(i[1] << 40 | key)  # param_id << 40 | target (search_terms)
            if refs:
                terms.append((rkey, sorted(set(refs))))
        return rows, terms

    @staticmethod
    def _digest(stored: Any) -> bytes:
        """A stored content hash as the first 16 bytes of the sha256 (decision 0092)."""
        return bytes(stored)[:16]

    def close(self) -> None:
        self.conn.close()


def floor_tables(pipeline: Pipeline, consortium: Consortium) -> Tables:
    facility, source = consortium.source("std-hl7v2")  # type: ignore[misc]
    maps = pipeline.mapping_set(facility, source).concept_maps
    tables = Tables()
    if "lab-item-loinc" in maps:
        tables.loinc = {k: (t.code, t.display) for k, t in maps["lab-item-loinc"].entries.items()}
    if "ucum" in maps:
        tables.ucum = {k: t.code for k, t in maps["ucum"].entries.items()}
    if "observation-interpretation" in maps:
        tables.flags = {k: t.code for k, t in maps["observation-interpretation"].entries.items()}
    return tables


# -- the stages, timed separately -------------------------------------------------------------

STAGES = ("parse", "map", "check", "mark", "store")


def staged_ingest(pipeline: Pipeline, raw: bytes, source_id: str, clock: dict[str, float]) -> None:
    """What Pipeline.ingest does for a new, valid message, one stage at a time."""
    facility, source = pipeline.consortium.source(source_id)  # type: ignore[misc]
    mappings = pipeline.mapping_set(facility, source)
    t0 = time.perf_counter()
    document = read_document("hl7v2", raw, max_bytes=pipeline.max_bytes)
    t1 = time.perf_counter()
    translation = document.translate(mappings, facility, pipeline.timezone)
    t2 = time.perf_counter()
    issues = [*translation.issues, *check_resources(translation.resources)]
    t3 = time.perf_counter()
    outcome = Outcome(
        document.format,
        document.encoding,
        translation.resources,
        issues,
        False,
        dict(translation.policies),
    )
    moment = datetime.now(UTC)
    digest = hashlib.sha256(raw).hexdigest()
    with pipeline.factory() as session:
        assert find_message(session, source.id, digest) is None
    t4 = t3
    with pipeline.factory.begin() as session:
        message = create_message(
            session,
            source_system=source.id,
            facility_id=facility.id,
            raw=raw,
            content_type=None,
            sha256=digest,
            detected_format=outcome.format,
            encoding=outcome.encoding,
            received_at=moment,
        )
        if pipeline.marks is not None:  # the recognition mark step, timed on its own (in
            # the begun transaction, as in the pipeline, where it runs after the merge)
            t3b = time.perf_counter()
            pipeline.marks.mark(session, outcome.resources, facility.id)
            t4 = t3 + time.perf_counter() - t3b
        steps.store(
            steps.Work(
                session=session,
                message=message,
                consortium=pipeline.consortium,
                facility=facility,
                zone=pipeline.timezone,
                moment=moment,
                resources=list(outcome.resources),
                policies=outcome.policies,
                issues=list(outcome.issues),
            )
        )
    t5 = time.perf_counter() - (t4 - t3)  # the store stage without the mark
    for name, spent in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t3), strict=True):
        clock[name] += spent


# -- running -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """Samples of one backend: per round, messages/s and resources/s of each row."""

    label: str
    pipeline: list[tuple[float, float]] = field(default_factory=list)
    floor: list[tuple[float, float]] = field(default_factory=list)
    bulk: list[tuple[float, float]] = field(default_factory=list)
    floor_bulk: list[tuple[float, float]] = field(default_factory=list)
    # --translate-workers N: bulk again with N translation worker processes (decision 0054)
    bulk_workers: list[tuple[float, float]] = field(default_factory=list)
    translate_workers: int = 0
    slices: list[float] = field(default_factory=list)
    slice_cpu: list[float] = field(default_factory=list)  # ms of this process's CPU per message
    # --slices: the floor into an empty store around each slice (bench/slice_reference.py)
    slice_ref: list[Cost] = field(default_factory=list)  # before and after: 2 a slice
    slice_wall: list[float] = field(default_factory=list)  # ms of wall clock per message
    sqlite: bool = True
    kb_per_message: float = 0.0
    breakdown: list[tuple[str, str, float, float]] = field(default_factory=list)
    # --slices: search_index rows per message by (resource type, parameter row, kind)
    index_rows: dict[tuple[str, str, int], float] = field(default_factory=dict)
    raw_bytes_per_message: float = 0.0
    stages: list[dict[str, float]] = field(default_factory=list)
    rows_written: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: str | None = None


def timed(
    fn: Callable[[str, bytes], int], messages: list[tuple[str, bytes]]
) -> tuple[float, float]:
    resources = 0
    start = time.perf_counter()
    for source, raw in messages:
        resources += fn(source, raw)
    spent = time.perf_counter() - start
    return len(messages) / spent, resources / spent


def timed_many(fn: Callable[[list[tuple[str, bytes]]], int], messages: list[tuple[str, bytes]]):
    start = time.perf_counter()
    resources = fn(messages)
    spent = time.perf_counter() - start
    return len(messages) / spent, resources / spent


def settled_floor(floor: Any, messages: list[tuple[str, bytes]], size: int) -> int:
    """The bulk floor under the collector's settings of the bulk row (adapter/heap.py)."""
    with settled():
        return int(floor.ingest_many(messages, size))


def bulk_ingest(pipeline: Pipeline, size: int) -> Callable[[list[tuple[str, bytes]]], int]:
    """Pipeline.ingest_many, ``size`` messages per transaction."""

    def run(messages: list[tuple[str, bytes]]) -> int:
        items = [(raw, Receipt(source, "cli")) for source, raw in messages]
        resources = 0
        with settled():  # as `adapter ingest` and `adapter sync` run (adapter/heap.py)
            for result in pipeline.ingest_many(items, batch=size):
                if not result.accepted or result.duplicate:
                    raise SystemExit(f"bench input was not accepted: {result.as_dict()}")
                resources += len(result.resources)
        return resources

    return run


def make_input(
    fixtures: list[Fixture], copies: int, prefix: str, unique_patients: Any
) -> list[tuple[str, bytes]]:
    """Unique copies; with ``unique_patients`` (bench_delivery.Patients) a new patient too."""
    if unique_patients is None:
        return batch(fixtures, copies, prefix)
    from bench_delivery import messages

    return messages(fixtures, copies, prefix, unique_patients)


COUNTED = ("resource_version", "search_index", "outbox")


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


def counted(engine: Engine, run: Callable[[], Any], messages: int) -> dict[str, float]:
    """Rows the run wrote to each table, per message."""
    before = table_counts(engine)
    run()
    after = table_counts(engine)
    return {t: (after[t] - before[t]) / messages for t in COUNTED}


def run_backend(
    row: Row,
    engine: Engine,
    settings: Settings,
    fixtures: list[Fixture],
    rounds: int,
    copies: int,
    args: argparse.Namespace,
) -> None:
    migrate(engine)
    consortium = load_consortium(settings.config)
    pipeline = make_pipeline(
        settings, consortium, make_session_factory(engine), recognition=catalogue(args, consortium)
    )
    floor = Floor(engine, consortium, floor_tables(pipeline, consortium))

    def through_pipeline(source: str, raw: bytes) -> int:
        result = pipeline.ingest(raw, Receipt(source, "cli"))
        if not result.accepted or result.duplicate:
            raise SystemExit(f"bench input was not accepted: {result.as_dict()}")
        return len(result.resources)

    try:
        # warm-up: caches, statement compilation, the patients' first rows
        timed(through_pipeline, batch(fixtures, 1, "w"))
        timed(floor.ingest, batch(fixtures, 1, "fw"))
        # what each writes per message (patients already stored, as in the timed rounds)
        row.rows_written = {
            "pipeline": counted(
                engine, lambda: timed(through_pipeline, batch(fixtures, 1, "cw")), len(fixtures)
            ),
            "floor": counted(
                engine, lambda: timed(floor.ingest, batch(fixtures, 1, "cf")), len(fixtures)
            ),
        }
        patients = None
        if args.unique_patients:
            from bench_delivery import Patients

            patients = Patients(spread_births=args.spread_births)
        bulk = bulk_ingest(pipeline, args.batch)
        timed_many(bulk, make_input(fixtures, 1, "bw", patients))
        if args.slices:
            row.sqlite = engine.dialect.name == "sqlite"
            reference = None
            if not args.no_reference:
                reference = make_reference(
                    engine, args, lambda e: Floor(e, consortium, floor.tables)
                )
            try:
                run_slices(row, engine, fixtures, bulk, args, patients, reference)
            finally:
                if reference is not None:
                    reference.close()
            return
        for n in range(rounds):
            row.pipeline.append(
                timed(through_pipeline, make_input(fixtures, copies, f"p{n}.", patients))
            )
            row.floor.append(timed(floor.ingest, make_input(fixtures, copies, f"f{n}.", patients)))
            row.bulk.append(timed_many(bulk, make_input(fixtures, copies, f"b{n}.", patients)))
            row.floor_bulk.append(
                timed_many(
                    lambda m: settled_floor(floor, m, args.batch),
                    make_input(fixtures, copies, f"g{n}.", patients),
                )
            )
            if args.translate_workers:
                row.translate_workers = args.translate_workers
                with pipeline.translation_workers(args.translate_workers):
                    timed_many(bulk, make_input(fixtures, 1, f"tw{n}.", patients))  # start
                    row.bulk_workers.append(
                        timed_many(bulk, make_input(fixtures, copies, f"t{n}.", patients))
                    )
            clock = dict.fromkeys(STAGES, 0.0)
            staged = batch(fixtures, copies, f"s{n}.")
            for source, raw in staged:
                staged_ingest(pipeline, raw, source, clock)
            row.stages.append({k: v / len(staged) for k, v in clock.items()})
    finally:
        floor.close()


def catalogue(args: argparse.Namespace, consortium: Consortium) -> Any:
    """The recognition catalogue of ``--catalogue`` (``example``: fixtures/recognition.yaml,
    the one deployed beside the example consortium), or None: no marks, as before."""
    if args.catalogue is None:
        return None
    from adapter.recognition.catalogue import load_catalogue

    path = ROOT / "fixtures" / "recognition.yaml" if args.catalogue == "example" else None
    return load_catalogue(path or Path(args.catalogue), {f.id for f in consortium.facilities})


def make_reference(engine: Engine, args: argparse.Namespace, make_floor: Any) -> Reference:
    """The host-speed reference of the slices: the floor into an empty store of the same
    backend (a SQLite file beside nothing else; a second PostgreSQL schema)."""
    if engine.dialect.name == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="slice_reference_"))
        reference = Reference(make_floor, sqlite_folder=folder, batch=args.batch)
        close = reference.close

        def close_and_remove() -> None:
            close()
            shutil.rmtree(folder, ignore_errors=True)

        reference.close = close_and_remove  # type: ignore[method-assign]
        return reference
    made = postgres_engine(args.pg)
    if isinstance(made, str):
        raise SystemExit(f"the reference schema: {made}")
    return Reference(make_floor, pg=made, batch=args.batch)


def run_slices(
    row: Row,
    engine: Engine,
    fixtures: list[Fixture],
    bulk: Callable[[list[tuple[str, bytes]]], int],
    args: argparse.Namespace,
    patients: Any,
    reference: Reference | None = None,
) -> None:
    """Cost as the tables grow: ``--slices`` slices of ``--slice-size`` messages, bulk.
    With ``reference``, the floor's cost into an empty store is measured before the first
    slice and after every slice, on the slice's messages (the next slice's for the first)."""
    copies = max(1, args.slice_size // len(fixtures))
    before = database_kb(engine)
    parts_before = database_parts(engine)
    params_before = index_rows_by_param(engine)
    for n in range(args.slices):
        messages = make_input(fixtures, copies, f"z{n}.", patients)
        if reference is not None and n == 0:
            row.slice_ref.append(reference.measure(messages))
        cpu = time.process_time()
        rate, _ = timed_many(bulk, messages)
        cpu_ms = (time.process_time() - cpu) * 1000 / len(messages)
        row.slices.append(rate)
        row.slice_cpu.append(cpu_ms)
        row.slice_wall.append(1000 / rate)
        if engine.dialect.name == "postgresql" and not args.no_analyze:
            # what autovacuum does on a running server (the test server has it off): with
            # the statistics of the empty tables, the foreign-key check of every search
            # index row kept a sequential-scan plan of `resource` (decision 0034)
            with engine.begin() as conn:
                maintain_own_schema(lambda s: conn.execute(text(s)))
        around = ""
        if reference is not None:
            row.slice_ref.append(reference.measure(messages))
            ref = row.slice_ref[-2:]
            ref_cpu = (ref[0].cpu_ms + ref[1].cpu_ms) / 2
            ref_wall = (ref[0].wall_ms + ref[1].wall_ms) / 2
            around = (
                f", {time.strftime('%H:%M:%S', time.gmtime())} UTC; reference CPU "
                f"{ref_cpu:.2f} ms/msg (ratio {cpu_ms / ref_cpu:.2f}), wall {ref_wall:.2f} "
                f"ms/msg (ratio {1000 / rate / ref_wall:.2f})"
            )
        print(
            f"   slice {n + 1}/{args.slices}: {len(messages)} messages, {rate:.1f} msg/s, "
            f"this process's CPU {cpu_ms:.2f} ms/msg, load {os.getloadavg()[0]:.1f}" + around,
            flush=True,
        )
    total = copies * len(fixtures) * args.slices
    row.kb_per_message = (database_kb(engine) - before) / total
    parts_after = database_parts(engine)
    for key, (rows, size) in parts_after.items():
        rows0, size0 = parts_before.get(key, (0, 0.0))
        row.breakdown.append((key[0], key[1], (rows - rows0) / total, (size - size0) / total))
    row.raw_bytes_per_message = next(b for t, i, _, b in row.breakdown if (t, i) == ("", "raw"))
    for key, count in index_rows_by_param(engine).items():
        row.index_rows[key] = (count - params_before.get(key, 0)) / total


def index_rows_by_param(engine: Engine) -> dict[tuple[str, str, int], int]:
    """search_index rows by (resource type, parameter row name, kind number)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.resource_type, p.param, p.kind, count(*) FROM search_index i "
                "JOIN search_param p ON p.param_id = i.param_id "
                "GROUP BY p.resource_type, p.param, p.kind"
            )
        ).all()
    return {(t, name, kind): n for t, name, kind, n in rows}


def print_index_rows(row: Row) -> None:
    """search_index rows per message by (type, parameter row, kind), most first."""
    kinds = {number: name for name, number in KINDS.items()}
    ranked = sorted(row.index_rows.items(), key=lambda item: -item[1])
    total = sum(row.index_rows.values())
    print(f"   search_index rows per message by (type, parameter row, kind): {total:.2f}")
    for (rtype, name, kind), rows in ranked:
        if rows > 0:
            print(f"     {rtype + ' ' + name:44} {kinds.get(kind, kind)!s:10} {rows:6.2f}")


def database_parts(engine: Engine) -> dict[tuple[str, str], tuple[int, float]]:
    """Bytes of every table and of each of its indexes: {(table, "" or index): (rows, bytes)}.

    SQLite: the ``dbstat`` virtual table (pages of each b-tree, ``pgsize``); PostgreSQL:
    ``pg_table_size`` (heap, TOAST, free-space and visibility maps) of each table of the
    schema and ``pg_relation_size`` of each of its indexes. Rows only for tables (the
    table's ``count(*)``). The raw bytes of the messages are ``("", "raw")``.
    """
    out: dict[tuple[str, str], tuple[int, float]] = {}
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            owner = dict(
                conn.exec_driver_sql(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
                ).all()
            )
            sizes = conn.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").all()
            for name, size in sizes:
                table = owner.get(name, name)
                if table.startswith("sqlite_"):
                    continue
                key = (table, "" if table == name else name)
                out[key] = (0, float(size))
        else:
            tables = conn.execute(
                text(
                    "SELECT c.relname, pg_table_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            ).all()
            for name, size in tables:
                out[(name, "")] = (0, float(size))
            indexes = conn.execute(
                text(
                    "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x "
                    "JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_class t ON t.oid = x.indrelid "
                    "JOIN pg_namespace n ON n.oid = t.relnamespace "
                    "WHERE n.nspname = current_schema()"
                )
            ).all()
            for table, name, size in indexes:
                out[(table, name)] = (0, float(size))
        for table, index in list(out):
            if index == "":
                rows = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                out[(table, "")] = (rows, out[(table, "")][1])
        raw = conn.execute(text("SELECT coalesce(sum(size), 0) FROM inbound_message")).scalar_one()
        out[("", "raw")] = (0, float(raw))
    return out


def print_breakdown(row: Row) -> None:
    """Per message: rows and KB of each table, with its indexes one by one (those that grew)."""
    tables: dict[str, list[tuple[str, float, float]]] = {}
    for table, index, rows, size in row.breakdown:
        if table:
            tables.setdefault(table, []).append((index, rows, size))
    totals = {t: sum(size for _, _, size in parts) for t, parts in tables.items()}
    print(
        f"   per message, by table (KB = 1024 bytes; raw bytes of the message "
        f"{row.raw_bytes_per_message / 1024:.2f} KB):"
    )
    print(f"   {'table / index':52} {'rows':>7} {'KB':>8}")
    for table in sorted(tables, key=lambda t: -totals[t]):
        parts = tables[table]
        if totals[table] <= 0 and not any(rows for _, rows, _ in parts):
            continue
        heap = next((p for p in parts if p[0] == ""), ("", 0.0, 0.0))
        indexes = sorted((p for p in parts if p[0]), key=lambda p: -p[2])
        print(f"   {table + ' (with indexes)':52} {heap[1]:7.2f} {totals[table] / 1024:8.2f}")
        print(f"   {'  table':52} {'':7} {heap[2] / 1024:8.2f}")
        for name, _, size in indexes:
            if size:
                print(f"   {'  ' + name:52} {'':7} {size / 1024:8.2f}")


def database_kb(engine: Engine) -> float:
    """The database's size: SQLite's pages (those still in the WAL too), or the schema's
    tables with their indexes and TOAST on PostgreSQL."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            return pages * size / 1024
        total = conn.execute(
            text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        ).scalar_one()
        return float(total) / 1024


def postgres_engine(url: str) -> tuple[Engine, Callable[[], None]] | str:
    """An engine on a fresh schema, and the clean-up; or why PostgreSQL cannot be used."""
    try:
        admin = make_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        # BENCH_PG_PREFIX: a name of one's own (a helper's branch) in the schema's name
        prefix = os.environ.get("BENCH_PG_PREFIX", "bench")
        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        return f"not reachable at {make_url(url).render_as_string()}: {type(exc).__name__}"
    # options given in the URL (e.g. ``-c log_min_duration_statement=200``) are kept
    given = make_url(url).query.get("options", "")
    options = " ".join(filter(None, [f"-csearch_path={schema}", str(given)]))
    scoped = make_url(url).update_query_dict({"options": options})
    engine = make_engine(scoped.render_as_string(hide_password=False))

    def drop() -> None:
        engine.dispose()
        if os.environ.get("BENCH_KEEP_PG"):  # study: keep the schema, print its name
            print(f"kept PostgreSQL schema {schema}")
            return
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


def report(
    rows: list[Row], fixtures: list[Fixture], rounds: int, copies: int, spent: float
) -> None:
    med = statistics.median
    sources = len({f.source for f in fixtures})
    print(
        f"ingest benchmark: {len(fixtures)} ORU fixtures from {sources} sources x {copies} "
        f"unique copies per row and round, {rounds} rounds, medians; "
        f"Python {sys.version.split()[0]}, {spent:.0f} s"
    )
    for row in rows:
        print(f"\n== {row.label}")
        if row.skipped:
            print(f"   skipped: {row.skipped}")
            continue
        if row.slices:
            first, last = row.slices[0], row.slices[-1]
            slower = 1 - last / first  # > 0: the last slice is slower
            verdict = "met" if slower <= 0.20 else "NOT met"
            print(
                "   bulk msg/s per slice: "
                + " ".join(f"{r:.0f}" for r in row.slices)
                + f"; last slice at {last / first:.2f}x the first's rate: goal (at most 20 % "
                f"slower) {verdict}"
            )
            growth = row.slice_cpu[-1] / row.slice_cpu[0] - 1
            print(
                "   this process's CPU ms/msg per slice: "
                + " ".join(f"{c:.1f}" for c in row.slice_cpu)
                + f"; last slice {growth:+.0%} against the first (the figure load does not move)"
            )
            if row.slice_ref:
                print_reference(row)
            print(
                f"   database per message: {row.kb_per_message:.1f} KB (goal <= 20 KB: "
                f"{'met' if row.kb_per_message <= 20 else 'NOT met'})"
            )
            print_breakdown(row)
            print_index_rows(row)
            continue
        p_msg, p_res = med(m for m, _ in row.pipeline), med(r for _, r in row.pipeline)
        f_msg, f_res = med(m for m, _ in row.floor), med(r for _, r in row.floor)
        print(f"   {'':44} {'msg/s':>8} {'res/s':>8} {'ms/msg':>8}")
        print(f"   {'pipeline (Pipeline.ingest)':44} {p_msg:8.0f} {p_res:8.0f} {1000 / p_msg:8.2f}")
        print(
            f"   {'floor (split + dicts + orjson + bulk insert)':44} {f_msg:8.0f} "
            f"{f_res:8.0f} {1000 / f_msg:8.2f}"
        )
        print(f"   pipeline / floor: {f_msg / p_msg:.1f}x the time per message")
        b_msg, b_res = med(m for m, _ in row.bulk), med(r for _, r in row.bulk)
        g_msg, g_res = med(m for m, _ in row.floor_bulk), med(r for _, r in row.floor_bulk)
        print(
            f"   {'bulk (Pipeline.ingest_many)':44} {b_msg:8.0f} {b_res:8.0f} {1000 / b_msg:8.2f}"
        )
        print(
            f"   {'floor, bulk (the same, N per transaction)':44} {g_msg:8.0f} {g_res:8.0f} "
            f"{1000 / g_msg:8.2f}"
        )
        verdict = "met" if b_msg / g_msg >= 0.3 else "NOT met"
        print(
            f"   bulk / bulk floor: {b_msg / g_msg:.2f}x the floor's rate "
            f"(goal >= 0.3: {verdict}); bulk / one per transaction: {b_msg / p_msg:.2f}x"
        )
        if row.bulk_workers:
            w_msg, w_res = med(m for m, _ in row.bulk_workers), med(r for _, r in row.bulk_workers)
            label = f"bulk, {row.translate_workers} translation worker(s) (0054)"
            print(f"   {label:44} {w_msg:8.0f} {w_res:8.0f} {1000 / w_msg:8.2f}")
            verdict = "met" if w_msg / g_msg >= 0.3 else "NOT met"
            print(
                f"   bulk with workers / bulk floor: {w_msg / g_msg:.2f}x (goal >= 0.3: "
                f"{verdict}; the floor uses one process); with / without workers: "
                f"{w_msg / b_msg:.2f}x"
            )
        for name, written in row.rows_written.items():
            print(
                f"   rows per message, {name}: "
                + ", ".join(f"{v:.1f} {t}" for t, v in written.items())
            )
        stages = {k: med(s[k] for s in row.stages) * 1000 for k in STAGES}
        total = sum(stages.values())
        parts = "  ".join(f"{k} {v:.2f} ms ({v / total:.0%})" for k, v in stages.items())
        print(f"   per message, stages timed separately: {parts}  = {total:.2f} ms")


def print_reference(row: Row) -> None:
    """Each slice's cost as a ratio to the floor measured around it (decision 0135)."""
    refs = [
        (row.slice_ref[n].cpu_ms + row.slice_ref[n + 1].cpu_ms) / 2 for n in range(len(row.slices))
    ]
    ref_walls = [
        (row.slice_ref[n].wall_ms + row.slice_ref[n + 1].wall_ms) / 2
        for n in range(len(row.slices))
    ]
    print(
        "   reference (the floor into an empty store, around each slice) CPU ms/msg: "
        + " ".join(f"{r.cpu_ms:.2f}" for r in row.slice_ref)
        + "; wall ms/msg: "
        + " ".join(f"{r.wall_ms:.2f}" for r in row.slice_ref)
    )
    cpu = [c / r for c, r in zip(row.slice_cpu, refs, strict=True)]
    wall = [w / r for w, r in zip(row.slice_wall, ref_walls, strict=True)]
    print("   CPU / reference CPU per slice: " + " ".join(f"{x:.2f}" for x in cpu))
    print("   wall / reference wall per slice: " + " ".join(f"{x:.2f}" for x in wall))
    # SQLite runs in this process: its CPU is all the work. PostgreSQL's backend is not in
    # this process's CPU, so there the wall-clock ratio is the one that can see it.
    ratios, name = (cpu, "CPU") if row.sqlite else (wall, "wall")
    last, fitted = ratios[-1] / ratios[0] - 1, fitted_growth(ratios)
    verdict = "met" if fitted <= 0.20 else "NOT met"
    print(
        f"   host-independent verdict ({name} / reference): last slice {last:+.0%} against the "
        f"first, least-squares line {fitted:+.0%} from first to last slice: goal (at most "
        f"20 % more) {verdict}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument(
        "--copies",
        type=int,
        default=2,
        help="unique copies of every fixture per row and round (default 2)",
    )
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument(
        "--batch", type=int, default=100, help="messages per transaction of the bulk rows (100)"
    )
    ap.add_argument(
        "--unique-patients",
        action="store_true",
        help="a new patient (national ID, local numbers) in every copy, as bench_delivery",
    )
    ap.add_argument(
        "--spread-births",
        action="store_true",
        help="with --unique-patients: a new birth date too (the patient index's blocks "
        "stay small, as in a real population)",
    )
    ap.add_argument(
        "--slices",
        type=int,
        default=0,
        help="instead of the rounds: this many slices of bulk ingest into one growing store",
    )
    ap.add_argument("--slice-size", type=int, default=2000, help="messages per slice (2000)")
    ap.add_argument(
        "--catalogue",
        help="a recognition catalogue (互认目录) whose marks the stored results get: a YAML "
        "path, or 'example' (fixtures/recognition.yaml, beside the example consortium); "
        "default none (the mark step does nothing)",
    )
    ap.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: no ANALYZE between slices (a server with autovacuum off)",
    )
    ap.add_argument(
        "--no-reference",
        action="store_true",
        help="--slices: no floor into an empty store around each slice (the host-speed "
        "reference of the ratios, decision 0135)",
    )
    ap.add_argument(
        "--translate-workers",
        type=int,
        default=0,
        help="also time bulk ingest with this many translation worker processes "
        "(decision 0054; default 0: not timed)",
    )
    ap.add_argument(
        "--keep-sqlite",
        metavar="PATH",
        help="copy the SQLite store to PATH at the end (to look at its columns)",
    )
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)  # the pipeline logs one INFO line per message
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        run_all(rows, settings, fixtures, Path(tmp), args)
    report(rows, fixtures, args.rounds, args.copies, time.perf_counter() - started)


def routed_settings(folder: Path) -> Settings:
    """Settings of the example consortium with its destinations enabled (a copy written to
    ``folder``), so the routes write outbox rows as in production (nothing is sent: no
    delivery worker runs)."""
    config = folder / "consortium.yaml"
    config.write_text(
        Settings().config.read_text(encoding="utf-8").replace("enabled: false", "enabled: true"),
        encoding="utf-8",
    )
    return Settings(config=config)


def run_all(
    rows: list[Row],
    settings: Settings,
    fixtures: list[Fixture],
    tmp: Path,
    args: argparse.Namespace,
) -> None:
    row = Row("SQLite (WAL, synchronous=NORMAL, temp file)")
    if args.no_sqlite:
        row.skipped = "--no-sqlite given"
    else:
        engine = make_engine(f"sqlite:///{tmp / 'bench.db'}")
        try:
            run_backend(row, engine, settings, fixtures, args.rounds, args.copies, args)
        finally:
            engine.dispose()
        if args.keep_sqlite:  # for a column-by-column look (bench/store_columns.py)
            shutil.copyfile(tmp / "bench.db", args.keep_sqlite)
    rows.append(row)

    row = Row("PostgreSQL (psycopg 3, default synchronous_commit=on)")
    made = "--no-pg given" if args.no_pg else postgres_engine(args.pg)
    if isinstance(made, str):
        row.skipped = made
    else:
        engine, drop = made
        try:
            run_backend(row, engine, settings, fixtures, args.rounds, args.copies, args)
        finally:
            drop()
    rows.append(row)


if __name__ == "__main__":
    main()
