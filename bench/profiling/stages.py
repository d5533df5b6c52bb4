"""Bench only: CPU time per stage of the pipeline in a running server, without cProfile's
cost (BENCH_STAGES_FILE; sitecustomize.py installs it).

Each function named in STAGES is wrapped: its callers' thread CPU time
(``time.thread_time``) from entry to return is added to its stage (inclusive: a stage
holds the stages it calls). SIGUSR1 zeroes the counts (bench_post_ingest.py sends it
before the 4-client run); at exit they are written to the file as JSON
``{stage: [calls, cpu seconds]}``.
"""

from __future__ import annotations

import functools
import importlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

# (module, attribute path): each place a function is called through
STAGES: tuple[tuple[str, str], ...] = (
    ("adapter.pipeline.group", "GroupCommit.ingest"),
    ("adapter.pipeline.group", "GroupCommit._lead"),
    ("adapter.pipeline.group", "GroupCommit._store"),
    ("adapter.pipeline.group", "GroupCommit._alone"),
    ("adapter.pipeline.ingest", "Pipeline.ingest"),
    ("adapter.pipeline.ingest", "Pipeline._settle"),
    ("adapter.pipeline.ingest", "Pipeline._duplicate"),
    ("adapter.pipeline.translator", "Translator.translate_for"),
    ("adapter.pipeline.translator", "check_resources"),
    ("adapter.pipeline.bulk", "_known"),
    ("adapter.pipeline.bulk", "_store_jobs"),
    ("adapter.pipeline.ingest", "create_message"),
    ("adapter.pipeline.steps", "audit_translated"),
    ("adapter.pipeline.steps", "audit_received"),
    ("adapter.pipeline.group", "flush_batch_writes"),
    ("adapter.audit.writer", "write"),
    ("sqlalchemy.orm.session", "Session.flush"),
    ("sqlalchemy.orm.session", "Session.commit"),
    ("sqlalchemy.orm.session", "SessionTransaction.commit"),
    ("sqlalchemy.engine.default", "DefaultDialect.do_commit"),
    ("adapter.store.engine", "_WriterQueue.enter"),
    # answered on receipt: the receipt's parts, and the drain (decision 0086)
    ("adapter.pipeline.on_receipt", "ReceiptCommit.receive"),
    ("adapter.pipeline.on_receipt", "ReceiptCommit._commit"),
    ("adapter.pipeline.on_receipt", "_keep"),
    ("adapter.pipeline.on_receipt", "create_message"),
    ("adapter.pipeline.drain", "drain_batch"),
    ("adapter.pipeline.drain", "_prepare_all"),
    ("adapter.pipeline.drain", "_received_rows"),
)

_lock = threading.Lock()
_totals: dict[str, list[float]] = {}


def _wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    totals = _totals.setdefault(name, [0, 0.0])

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with _lock:
                totals[0] += 1
                totals[1] += spent

    return timed


def install(path: str) -> Callable[[], None]:
    """Wrap the stages; returns the function that zeroes them."""
    for module_name, attribute in STAGES:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *parents, last = attribute.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is None or not hasattr(owner, last):
            continue
        name = f"{module_name.rsplit('.', 1)[-1]}.{attribute}"
        setattr(owner, last, _wrap(name, getattr(owner, last)))
    steps = importlib.import_module("adapter.pipeline.steps")
    steps.STEPS = tuple(_wrap(f"step.{s.__name__}", s) for s in steps.STEPS)

    def reset() -> None:
        with _lock:
            for totals in _totals.values():
                totals[0], totals[1] = 0, 0.0

    import atexit

    def dump() -> None:
        import multiprocessing

        if multiprocessing.parent_process() is not None:
            return  # a translation worker (it inherits the variable): the server's file
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_totals, out, indent=1)

    atexit.register(dump)
    return reset
