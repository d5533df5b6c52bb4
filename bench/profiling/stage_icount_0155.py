"""Decision 0155: more stage sets for the message's steps (identity, trace, care, outbox,
audit, the message row), counted as ``stage_icount_0143.py`` counts them.

    STAGES=A PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=OUT .venv/bin/python bench/profiling/stage_icount_0155.py \\
        COPIES [unique]
    STAGES=A .venv/bin/python bench/profiling/stage_icount_0155.py split OUT COPIES
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stage_icount_0143 as base

_SETS = {
    "A": [  # inside index_patients
        ("near", "adapter.identity.index.records", "near"),
        ("classify (resolve)", "adapter.identity.index.resolve", "classify"),
        ("key_hash (resolve)", "adapter.identity.index.resolve", "key_hash"),
        ("write_keys", "adapter.identity.index.records", "write_keys"),
        ("update_record", "adapter.identity.index.records", "update_record"),
        ("history", "adapter.identity.index.records", "history"),
        ("queue_reviews", "adapter.identity.index.resolve", "queue_reviews"),
        ("compare_names (resolve)", "adapter.identity.index.resolve", "compare_names"),
        ("resolve_record", "adapter.identity.index.resolve", "resolve_record"),
    ],
    "B": [  # trace, route, care, message row
        ("trace", "adapter.pipeline.steps", "trace"),
        ("provenance_for", "adapter.pipeline.steps", "provenance_for"),
        ("save_resources (save, trace)", "adapter.pipeline.steps", "save_resources"),
        ("note_care", "adapter.pipeline.steps", "note_care"),
        ("route", "adapter.pipeline.steps", "route"),
        ("set_message_result", "adapter.pipeline.steps", "set_message_result"),
        ("enqueue_many", "adapter.pipeline.steps", "enqueue_many"),
        ("audit_stored", "adapter.pipeline.steps", "audit_stored"),
        ("Work.open_care", "adapter.pipeline.steps", "Work.open_care"),
    ],
    "C": [  # inside note_care, record_result and the audit events
        ("patient_key (note_care)", "adapter.pipeline.steps", "patient_key"),
        ("care_facts", "adapter.pipeline.steps", "care_facts"),
        ("Work.caring", "adapter.pipeline.steps", "Work.caring"),
        ("Work.wrote_care", "adapter.pipeline.steps", "Work.wrote_care"),
        ("care.wrote", "adapter.store.care", "wrote"),
        ("set_committed_value (messages)", "adapter.store.messages", "set_committed_value"),
        ("audit.message_event", "adapter.audit", "message_event"),
        ("audit writer _body", "adapter.audit.writer", "_body"),
        ("make_transient_to_detached", "adapter.store.messages", "make_transient_to_detached"),
    ],
}


def _stages() -> list[tuple[str, str | None, str]]:
    return _SETS[os.environ.get("STAGES", "A")]


base._stages = _stages

if __name__ == "__main__":
    if sys.argv[1] == "split":
        base.split(sys.argv[2], int(sys.argv[3]))
    else:
        base.run(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "unique")
