"""Benchmark: migration 0029's upgrade and downgrade on a large audit log (decision 0074).

    .venv/bin/python bench/audit_migration_0029.py [--records 100000] [--pg URL | --no-pg]

A database at 0027 gets ``--records`` records (as the writer at 0027 stored them: hex
hashes, text references; the bodies as plain text) with 3.4 links each (a patient and
resource versions with UUID ids, as a delivered lab message's records have on average), by
plain inserts; then the upgrade to 0029 and the downgrade to 0027 are timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from migration_timing import database_options, on_each_database, up_and_down
from sqlalchemy import Engine, text

from adapter.audit.chain import GENESIS, canonical, chain_hash
from adapter.store import migrate


def fill(engine: Engine, records: int) -> int:
    postgresql = engine.dialect.name == "postgresql"
    prev, links_total = GENESIS, 0
    columns = "seq, recorded, action, outcome, actor, channel, message_id, body, prev_hash, hash"
    insert = text(
        f"INSERT INTO audit_record ({columns}) VALUES (:seq, :recorded, :action, :outcome, "
        ":actor, :channel, :message_id, :body, :prev_hash, :hash)"
    )
    link = text("INSERT INTO audit_link (seq, kind, reference) VALUES (:seq, :kind, :reference)")
    with engine.begin() as conn:
        rows, links = [], []
        for seq in range(1, records + 1):
            message = str(uuid.uuid4())
            patient = f"Patient/{uuid.uuid4()}"
            entities = [f"Observation/{uuid.uuid4()}/_history/1" for _ in range(2 + seq % 2)]
            body = canonical(
                {"seq": seq, "message": message, "patients": [patient], "entities": entities}
            )
            digest = chain_hash(prev, body)
            rows.append(
                {
                    "seq": seq,
                    "recorded": "2026-12-05 08:00:00.000000+00:00",
                    "action": "delivery.delivered",
                    "outcome": "success",
                    "actor": "worker:w1",
                    "channel": "fhir",
                    "message_id": message,
                    "body": body.encode() if postgresql else body,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            links.append({"seq": seq, "kind": "patient", "reference": patient})
            links += [{"seq": seq, "kind": "entity", "reference": e} for e in entities]
            prev = digest
            if len(rows) == 5000 or seq == records:
                conn.execute(insert, rows)
                conn.execute(link, links)
                links_total += len(links)
                rows, links = [], []
    return links_total


def timed(engine: Engine, records: int) -> None:
    migrate(engine, "0027")
    links = fill(engine, records)
    up, down = up_and_down(engine, "0027", "0029")
    print(
        f"{engine.dialect.name}: {records:,} records, {links:,} links: upgrade {up:.1f} s, "
        f"downgrade {down:.1f} s, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=100_000)
    database_options(ap)
    args = ap.parse_args()
    on_each_database(args, lambda engine: timed(engine, args.records))


if __name__ == "__main__":
    main()
