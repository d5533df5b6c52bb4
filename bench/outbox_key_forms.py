"""Benchmark: the outbox's size per lab message with other forms of its order key
(decision 0084), on a SQLite store that ``bench_ingest.py --keep-sqlite`` kept.

    .venv/bin/python bench/bench_ingest.py --slices 3 --slice-size 300 --unique-patients \\
        --spread-births --no-pg --keep-sqlite /tmp/bench.db
    .venv/bin/python bench/outbox_key_forms.py /tmp/bench.db

Each form is written into a copy of the store (one UPDATE of ``order_key``), the copy
``VACUUM``ed, and the outbox table and its indexes measured with ``dbstat``:

* hash: 8 bytes of the SHA-256 of the patient's key (or the resource's own) as an
  integer: what the store writes (``enqueue.order_hash``);
* patient key: the Patient's ``resource_key`` (the resource's own for resources about no
  patient; a patient the store never received would need a placeholder row);
* 16 bytes: the first 16 bytes of the SHA-256, a BLOB;
* text: ``Patient/<id>`` (or ``Type/<id>``), as before decision 0084 (with resource_key).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

PATIENT_OF = (
    "(SELECT coalesce(r.patient_key, r.resource_type || '/' || r.id) FROM resource r"
    " WHERE r.resource_key = outbox.resource_key)"
)
FORMS = {
    "hash (8 bytes, as stored)": None,
    "patient resource_key": (
        "coalesce((SELECT p.resource_key FROM resource r JOIN resource p"
        " ON p.resource_type = 'Patient' AND 'Patient/' || p.id = r.patient_key"
        " WHERE r.resource_key = outbox.resource_key), resource_key)"
    ),
    "16 bytes (BLOB)": f"sha16({PATIENT_OF})",
    "text (Patient/<id>)": PATIENT_OF,
}


def _sha16(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:16]


def measure(store: Path, expression: str | None) -> tuple[int, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        shutil.copyfile(store, copy)
        conn = sqlite3.connect(copy)
        conn.create_function("sha16", 1, _sha16, deterministic=True)
        if expression is not None:
            conn.execute(f"UPDATE outbox SET order_key = {expression}")
            conn.commit()
        conn.execute("VACUUM")
        messages = conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0]
        sizes = dict(
            conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name = 'outbox'"
                " OR name LIKE 'ix\\_outbox\\_%' ESCAPE '\\'"
                " OR name LIKE 'uq\\_outbox\\_%' ESCAPE '\\'"
                " GROUP BY name"
            ).fetchall()
        )
        conn.close()
    return messages, {name: size / 1024 / messages for name, size in sizes.items()}


def main() -> None:
    store = Path(sys.argv[1])
    print(f"outbox KB per lab message by order key form ({store}, each VACUUMed)")
    for label, expression in FORMS.items():
        messages, sizes = measure(store, expression)
        queue = sizes.get("ix_outbox_destination_id_state_order_key", 0.0)
        print(
            f"  {label:28} outbox {sum(sizes.values()):5.2f}  table {sizes.get('outbox', 0):5.2f}"
            f"  (destination_id, state, order_key) {queue:5.2f}  [{messages} messages]"
        )


if __name__ == "__main__":
    main()
