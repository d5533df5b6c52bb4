"""Benchmark: migration 0034's upgrade and downgrade on a large store (decision 0082).

    .venv/bin/python bench/migration_0034.py [--messages 30000] [--pg URL | --no-pg]

A database at 0030 gets, per ``--messages``, what a lab message leaves at ingest: 3 audit
records (a UUID correlation id, the action and outcome as text), one identity_record (its
features as JSON text, ~500 bytes), 2 identity_key rows (hex) and one care_relationship
row (SQLite: text instants), as 0030 stored them, by plain inserts; then the upgrade to
0034 and the downgrade to 0030 are timed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from migration_timing import database_options, on_each_database, up_and_down
from sqlalchemy import Engine, text

from adapter.store import migrate

_ACTIONS = ("message.received", "message.translated", "message.stored")
T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _features(record: str, n: int) -> str:
    return orjson.dumps(
        {
            "record": record,
            "facility": "qingshan-county-hospital",
            "name": "谢建军",
            "surname_len": 1,
            "birth": f"19{50 + n % 50}-11-09",
            "sex": None,
            "national_ids": [],
            "weak_ids": [f"4309991973{n:08d}"],
            "id_birth_sex_agree": True,
            "cards": [],
            "phones": [f"135{n:08d}"],
            "township": "青山县城关镇",
            "identifiers": [
                {"system": "urn:oid:2.16.156.10011.1.3", "value": f"4309991973{n:08d}"},
                {
                    "system": "https://qingshan.example.cn/fhir/sid/county-hospital/patient",
                    "value": f"MZ{n:011d}",
                },
            ],
        }
    ).decode()


def fill(engine: Engine, messages: int) -> None:
    sqlite = engine.dialect.name == "sqlite"

    def instant(at: datetime) -> object:
        if not sqlite:
            return at
        return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    statements = {
        "audit": text(
            "INSERT INTO audit_record (seq, recorded, action, outcome, actor, facility, channel, "
            "correlation_id, message_id, body, prev_hash, hash) VALUES (:seq, :recorded, "
            ":action, 'success', 'source:county-lis', 'qingshan-county-hospital', 'cli', "
            ":message, :message, :body, :digest, :digest)"
        ),
        "record": text(
            "INSERT INTO identity_record VALUES (:p, :person, 'qingshan-county-hospital', "
            "'auto', 1, 'no-match', 0.0, '{}', :features, :at, :at)"
        ),
        "key": text("INSERT INTO identity_key (key_hash, patient_id) VALUES (:k, :p)"),
        "care": text(
            "INSERT INTO care_relationship (person_id, facility_id, source, ref, start_at, "
            "end_at, detail, created_at, updated_at) VALUES (:person, 'qingshan-county-hospital',"
            " 'activity', '', :at, :end, :detail, :at, :at)"
        ),
    }
    rows: dict[str, list[dict[str, object]]] = {k: [] for k in statements}
    seq = 0
    with engine.begin() as conn:
        for n in range(messages):
            message, patient, person = (str(uuid.uuid4()) for _ in range(3))
            at = T0 + timedelta(seconds=n, microseconds=n)
            for action in _ACTIONS:
                seq += 1
                body = orjson.dumps({"seq": seq, "action": action, "message": message}).decode()
                rows["audit"].append(
                    {
                        "seq": seq,
                        "recorded": (at - datetime(1970, 1, 1, tzinfo=UTC))
                        // timedelta(microseconds=1)
                        if sqlite
                        else at,
                        "action": action,
                        "message": message,
                        "body": body if sqlite else body.encode(),
                        "digest": hashlib.sha256(body.encode()).digest(),
                    }
                )
            rows["record"].append(
                {
                    "p": patient,
                    "person": person,
                    "features": _features(patient, n),
                    "at": instant(at),
                }
            )
            rows["key"] += [
                {"k": hashlib.sha256(f"{k}|{n}".encode()).hexdigest(), "p": patient}
                for k in ("nid", "birth")
            ]
            rows["care"].append(
                {
                    "person": person,
                    "at": instant(at),
                    "end": instant(at + timedelta(days=365)),
                    "detail": f"Specimen/{uuid.uuid4()}",
                }
            )
            if len(rows["record"]) == 2000 or n == messages - 1:
                for name, statement in statements.items():
                    conn.execute(statement, rows[name])
                    rows[name] = []


def timed(engine: Engine, messages: int) -> None:
    migrate(engine, "0030")
    fill(engine, messages)
    up, down = up_and_down(engine, "0030", "0034")
    print(
        f"{engine.dialect.name}: {messages:,} messages ({3 * messages:,} audit records, "
        f"{messages:,} identity records, {2 * messages:,} keys, {messages:,} care rows): "
        f"upgrade {up:.1f} s, downgrade {down:.1f} s, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=30_000)
    database_options(ap)
    args = ap.parse_args()
    on_each_database(args, lambda engine: timed(engine, args.messages))


if __name__ == "__main__":
    main()
