"""Decision 0110: where one bulk-ingest process spends its CPU on SQLite, stage by stage,
without a profiler (each function wrapped, its thread CPU time added to its stage).

    .venv/bin/python bench/profiling/bulk_stages_0110.py [ROUNDS] [COPIES] [unique]

Bulk ingest (``ingest_many``, batches of 100, no translation workers) of the bench's ORU
input into a fresh SQLite file, after a warm-up; per round: the process's CPU ms a message
and each stage's ms a message (inclusive: a stage holds the stages it calls). With
``unique`` every copy is a new patient (bench_delivery.Patients, births spread): the patient
index reads and writes for every message, as a night of distinct patients does.

The stages are the ones the next steps of decision 0106 would change: the patient index
(``resolve_identity``; its read of the records near a Patient, ``_near``), care
(``note_care``; its read of the open care rows, ``care.read_rows``), the Provenance
(``trace``; its ``save_resources`` is the difference between ``save_resources (all)`` and
``save``), the message row's INSERT and its result UPDATE (``set_message_result``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_delivery import Patients
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

import adapter.identity.index.records as records
import adapter.identity.index.resolve as resolve
import adapter.pipeline.bulk as bulk_module
import adapter.pipeline.steps as steps
import adapter.store.care as care
import adapter.store.messages as messages
from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

SPENT: dict[str, float] = {}


def _wrapped(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[name] = SPENT.get(name, 0.0) + time.thread_time() - start

    return timed


def _install() -> None:
    steps.STEPS = tuple(_wrapped(s.__name__, s) for s in steps.STEPS)
    steps.save_resources = _wrapped("save_resources (all)", steps.save_resources)
    steps.index_patients = _wrapped("  identity: index_patients", steps.index_patients)
    records._near = _wrapped("  identity: _near (read)", records._near)
    resolve.resolve_record = _wrapped("  identity: resolve_record", resolve.resolve_record)
    care.read_rows = _wrapped("  care: read_rows (open care)", care.read_rows)
    care.note_activity = _wrapped("  care: note_activity", care.note_activity)
    steps.set_message_result = _wrapped("  set_message_result", steps.set_message_result)
    messages.insert_rows = _wrapped("message row INSERT", messages.insert_rows)
    bulk_module.flush_batch_writes = _wrapped("held rows at commit", bulk_module.flush_batch_writes)
    bulk_module._known_ids = _wrapped("duplicate lookup", bulk_module._known_ids)


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    unique = len(sys.argv) > 3 and sys.argv[3] == "unique"
    _install()
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/stages.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        translator = pipeline.translator
        translator.translate_for = _wrapped("translate", translator.translate_for)  # type: ignore[method-assign]
        bulk = bulk_ingest(pipeline, 100)
        patients = Patients(spread_births=True) if unique else None
        bulk(make_input(fixtures, 2, "warm.", patients))
        for r in range(rounds):
            SPENT.clear()
            msgs = make_input(fixtures, copies, f"r{r}.", patients)
            with settled():
                start = time.process_time()
                bulk(msgs)
                total = 1000 * (time.process_time() - start) / len(msgs)
            print(f"round {r}: process {total:.2f} ms/msg (load {os.getloadavg()[0]:.1f})")
            for name, spent in sorted(SPENT.items(), key=lambda kv: -kv[1]):
                print(f"    {name:32s} {1000 * spent / len(msgs):6.3f}")
        engine.dispose()


if __name__ == "__main__":
    main()
