"""Decision 0143: the bulk's instructions a message, stage by stage, counted exactly.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT \\
        .venv/bin/python bench/profiling/stage_icount_0143.py COPIES [unique]
    .venv/bin/python bench/profiling/stage_icount_0143.py split OUT COPIES

(``STAGES=2`` for the second set of stages, the same for both commands.)

The set-up of ``icount_0140.py bulk`` (one SQLite file, warmed up, COPIES copies of the
bench's ORU input by ``ingest_many``, batches of 100, no translation workers, only the
measured copies instrumented). Python's functions are all one C function to callgrind
(``_PyEval_EvalFrameDefault``); here each measured stage is called through a C function of
its own that nothing else in the bulk calls (``functools.reduce``, ``itertools.starmap``
...), so that callgrind's inclusive cost of that C function is the stage's instructions
(what it calls included: ``index_values`` is inside ``save`` and ``trace``). ``split``
prints each stage's instructions a message and its share of the bulk.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import itertools
import logging
import operator
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _via_reduce(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: functools.reduce(lambda _, __: f(*a, **k), [None], None)


def _via_starmap(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: next(itertools.starmap(lambda: f(*a, **k), [()]))


def _via_takewhile(f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **k: Any) -> Any:
        out: list[Any] = []
        list(itertools.takewhile(lambda _: out.append(f(*a, **k)) and False, [0]))
        return out[0]

    return call


def _via_dropwhile(f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **k: Any) -> Any:
        out: list[Any] = []
        list(itertools.dropwhile(lambda _: out.append(f(*a, **k)) or True, [0]))
        return out[0]

    return call


def _via_filterfalse(f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **k: Any) -> Any:
        out: list[Any] = []
        list(itertools.filterfalse(lambda _: out.append(f(*a, **k)) or True, [0]))
        return out[0]

    return call


def _via_accumulate(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: list(itertools.accumulate([None, None], lambda _, __: f(*a, **k)))[1]


def _via_context(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: contextvars.copy_context().run(f, *a, **k)


def _via_call(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: operator.call(f, *a, **k)


def _via_groupby(f: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **k: Any) -> Any:
        out: list[Any] = []
        next(itertools.groupby([0], key=lambda _: out.append(f(*a, **k))))
        return out[0]

    return call


# (C function callgrind names, wrapper)
_ENTRIES = (
    ("functools_reduce", _via_reduce),
    ("starmap_next", _via_starmap),
    ("takewhile_next", _via_takewhile),
    ("dropwhile_next", _via_dropwhile),
    ("filterfalse_next", _via_filterfalse),
    ("accumulate_next", _via_accumulate),
    ("context_run", _via_context),
    ("_operator_call", _via_call),
    ("groupby_next", _via_groupby),
)


def _stages() -> list[tuple[str, str | None, str]]:
    """(label, module, attribute): each place a stage is called through; set 1 or 2
    (environment ``STAGES``, at most nine stages a set: one C entry each)."""
    if os.environ.get("STAGES", "1") == "1":
        return [
            ("translate_for", None, "translate_for"),  # the Translator's method
            ("save (step)", "adapter.pipeline.steps", "save"),
            ("index_values (save_resources)", "adapter.store.resources", "index_values"),
            ("resolve_identity", "adapter.pipeline.steps", "resolve_identity"),
            ("merge_with_stored", "adapter.pipeline.steps", "merge_with_stored"),
            ("note_care", "adapter.pipeline.steps", "note_care"),
            ("trace", "adapter.pipeline.steps", "trace"),
            ("flush_batch_writes", "adapter.pipeline.bulk", "flush_batch_writes"),
            ("_store_job (steps, message row)", "adapter.pipeline.bulk", "_store_job"),
        ]
    if os.environ.get("STAGES") == "3":
        return [
            ("driver_index_rows", "adapter.store.resources", "driver_index_rows"),
            ("insert_rows (created, versions)", "adapter.store.resources", "insert_rows"),
            ("keep_stored", "adapter.store.resources", "keep_stored"),
            ("param_ids", "adapter.store.resources", "param_ids"),
            ("system_ids", "adapter.store.resources", "system_ids"),
            ("driver_executemany (index rows)", "adapter.store.resources", "driver_executemany"),
            ("take_index", "adapter.store.resources", "BatchWrites.take_index"),
            ("target_keys", "adapter.store.resources", "target_keys"),
            ("flush_index_rows", "adapter.store.resources", "flush_index_rows"),
        ]
    if os.environ.get("STAGES") == "5":
        return [
            ("care.read_rows (open care)", "adapter.store.care", "read_rows"),
            ("care.note_activity", "adapter.store.care", "note_activity"),
            ("care_facts", "adapter.pipeline.steps", "care_facts"),
            ("provenance_for", "adapter.pipeline.steps", "provenance_for"),
            ("save_resources (save, trace)", "adapter.pipeline.steps", "save_resources"),
            ("recipients", "adapter.pipeline.steps", "recipients"),
            ("near (patient index)", "adapter.identity.index.records", "near"),
            ("_features (patient index)", "adapter.identity.index.resolve", "_features"),
            ("audit.record (events queued)", "adapter.audit", "record"),
        ]
    if os.environ.get("STAGES") == "6":
        return [
            ("insert_rows (message row)", "adapter.store.messages", "insert_rows"),
            ("make_transient_to_detached", "adapter.store.messages", "make_transient_to_detached"),
            ("Session.add", "sqlalchemy.orm.session", "Session.add"),
            ("set_message_result", "adapter.pipeline.steps", "set_message_result"),
            ("audit_stored", "adapter.pipeline.steps", "audit_stored"),
            ("advance_referrals", "adapter.pipeline.steps", "advance_referrals"),
            ("note_referral_ledger", "adapter.pipeline.steps", "note_referral_ledger"),
            ("read_referral_status", "adapter.pipeline.steps", "read_referral_status"),
            ("mark_recognisable_results", "adapter.pipeline.steps", "mark_recognisable_results"),
        ]
    if os.environ.get("STAGES") == "7":
        return [
            ("audit canonical", "adapter.audit.writer", "canonical"),
            ("audit chain_hash", "adapter.audit.writer", "chain_hash"),
            ("audit row_of", "adapter.audit.writer", "row_of"),
            ("audit links_of", "adapter.audit.writer", "links_of"),
            ("audit insert_rows (records, links)", "adapter.audit.writer", "insert_rows"),
            ("audit _correlation", "adapter.audit.writer", "_correlation"),
            ("audit _prefetch_correlations", "adapter.audit.writer", "_prefetch_correlations"),
            ("_known_ids (bulk)", "adapter.pipeline.bulk", "_known_ids"),
            ("_start (bulk)", "adapter.pipeline.bulk", "_start"),
        ]
    if os.environ.get("STAGES") == "8":  # decision 0148: the rest of the message's steps
        return [
            ("flag_referral_paths", "adapter.pipeline.steps", "flag_referral_paths"),
            ("apply_referral_status", "adapter.pipeline.steps", "apply_referral_status"),
            ("audit_translated", "adapter.pipeline.steps", "audit_translated"),
            ("audit_received", "adapter.pipeline.steps", "audit_received"),
            ("record_result", "adapter.pipeline.steps", "record_result"),
            ("Pipeline._work", "adapter.pipeline.ingest", "Pipeline._work"),
            ("index_patients", "adapter.pipeline.steps", "index_patients"),
            ("lock_resources (merge)", "adapter.pipeline.steps", "lock_resources"),
            ("merge_stored (merge)", "adapter.pipeline.steps", "merge_stored"),
        ]
    if os.environ.get("STAGES") == "9":  # decision 0148: inside the steps
        return [
            ("person_of (Work.person)", "adapter.pipeline.steps", "person_of"),
            ("caring_of (Work.caring)", "adapter.store.care", "caring_of"),
            ("routed", "adapter.pipeline.steps", "routed"),
            ("enqueue_many", "adapter.pipeline.steps", "enqueue_many"),
            ("_queue (route)", "adapter.pipeline.steps", "_queue"),
            ("resolve_record", "adapter.identity.index.resolve", "resolve_record"),
            ("features_of", "adapter.identity.index.resolve", "features_of"),
            ("catch_up", "adapter.pipeline.steps", "catch_up"),
            ("_first_noted_with_its_read", "adapter.pipeline.steps", "_first_noted_with_its_read"),
        ]
    if os.environ.get("STAGES") == "4":
        return [
            ("_stamped", "adapter.store.resources", "_stamped"),
            ("patient_key", "adapter.store.resources", "patient_key"),
            ("_index_tuples", "adapter.store.resources", "_index_tuples"),
            ("_named_by_key", "adapter.store.resources", "_named_by_key"),
            ("BatchWrites.replace", "adapter.store.resources", "BatchWrites.replace"),
            ("BatchWrites.add_version", "adapter.store.resources", "BatchWrites.add_version"),
            ("lock_resources", "adapter.pipeline.steps", "lock_resources"),
            ("merge_stored", "adapter.pipeline.steps", "merge_stored"),
            ("index_patients", "adapter.pipeline.steps", "index_patients"),
        ]
    return [
        ("content_hash", "adapter.store.resources", "content_hash"),
        ("insert_rows (resource, version rows)", "adapter.store.resources", "insert_rows"),
        ("_insert_index_tuples", "adapter.store.resources", "_insert_index_tuples"),
        ("insert_outbox_rows", "adapter.store.outbox.enqueue", "insert_outbox_rows"),
        ("driver_many (held results)", "adapter.store.resources", "driver_many"),
        ("create_message", "adapter.pipeline.ingest", "create_message"),
        ("route", "adapter.pipeline.steps", "route"),
        ("enqueue", "adapter.pipeline.steps", "enqueue"),
        ("audit write (at the commit)", "adapter.audit.writer", "write"),
    ]


def _method(via: Callable[..., Any], f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` (a function of the class) through ``via``, as a method."""
    through = via(f)

    def method(self: Any, *a: Any, **k: Any) -> Any:
        return through(self, *a, **k)

    return method


def _wrap_steps() -> list[str]:
    """Wrap each stage through its own C entry; the labels in the entries' order."""
    import adapter.pipeline.steps as steps
    from adapter.pipeline.translator import Translator

    labels = []
    for (label, where, name), (_, via) in zip(_stages(), _ENTRIES, strict=False):
        module = None if where is None else importlib.import_module(where)
        if module is None:
            Translator.translate_for = via(Translator.translate_for)  # type: ignore[method-assign]
        elif "." in name:  # a method: Class.method
            owner, method = name.split(".")
            cls = getattr(module, owner)
            setattr(cls, method, _method(via, getattr(cls, method)))
        else:
            wrapped = via(getattr(module, name))
            setattr(module, name, wrapped)
            if module is steps:  # STEPS holds the step functions themselves
                steps.STEPS = tuple(wrapped if s.__name__ == name else s for s in steps.STEPS)
        labels.append(label)
    return labels


def run(copies: int, unique: bool) -> None:
    sys.path.insert(0, str(Path.cwd() / "bench"))
    sys.path.insert(0, str(Path.cwd()))
    sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
    from icount_0120 import ingest_copies
    from icount_0133 import _instrument

    from adapter.store import make_engine

    logging.disable(logging.WARNING)
    _wrap_steps()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/stages.db")
        ingest_copies(engine, Path(tmp), copies, unique, _instrument)
        engine.dispose()


def split(path: str, copies: int) -> None:
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out)[1].replace(",", ""))
    per = 30 * copies
    print(f"bulk: {total / per / 1e6:.3f} M instructions a message ({total:,} for {per})")
    labels = [s[0] for s in _stages()]
    for (entry, _), label in zip(_ENTRIES, labels, strict=False):
        found = re.search(rf"^\s*([\d,]+) \([ \d.]+%\)\s+\S*:{re.escape(entry)} ", out, re.M)
        cost = int(found[1].replace(",", "")) if found else 0
        print(f"{label:42} {cost / per / 1e6:7.3f} M  {100 * cost / total:5.1f} %")


if __name__ == "__main__":
    if sys.argv[1] == "split":
        split(sys.argv[2], int(sys.argv[3]))
    else:
        run(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "unique")
