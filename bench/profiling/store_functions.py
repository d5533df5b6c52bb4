"""Bench only: the store's thread CPU per function, without cProfile's cost per call
(decision 0078; ``bench/drain_cpu.py --functions``).

Each function in FUNCTIONS is wrapped where it is called from (the module attribute the
callers read): the calling thread's CPU (``time.thread_time``) from entry to return is
added to it, inclusive (a function holds those it calls). ``_processed`` (the bind
processors of fast_insert) is counted by its first column, i.e. by table.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

# (module, attribute, label): each place a function is called through
FUNCTIONS: tuple[tuple[str, str, str], ...] = (
    ("adapter.pipeline.steps", "save_resources", "save_resources (steps)"),
    ("adapter.pipeline.steps", "lock_resources", "lock_resources (steps)"),
    ("adapter.pipeline.steps", "enqueue_many", "enqueue_many (steps)"),
    ("adapter.store.resources", "index_values", "index_values (in the store)"),
    ("adapter.store.resources", "content_hash", "content_hash"),
    ("adapter.store.resources", "_stamped", "_stamped"),
    ("adapter.store.resources", "new_keys", "new_keys"),
    ("adapter.store.resources", "_locked_rows", "_locked_rows (SELECT resource)"),
    ("adapter.store.resources", "insert_rows", "insert_rows (resource rows)"),
    ("adapter.store.resources", "flush_batch_writes", "flush_batch_writes"),
    ("adapter.store.resources", "flush_index_rows", "flush_index_rows"),
    ("adapter.store.resources", "_insert_index_tuples", "_insert_index_tuples"),
    ("adapter.store.resources", "insert_tuples", "insert_tuples (index rows)"),
    ("adapter.store.outbox.enqueue", "insert_rows", "insert_rows (outbox rows)"),
)

cpu: Counter[str] = Counter()
calls: Counter[str] = Counter()


def _wrap(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            cpu[label] += time.thread_time() - start
            calls[label] += 1

    return timed


def install() -> None:
    for module, attribute, label in FUNCTIONS:
        owner = importlib.import_module(module)
        setattr(owner, attribute, _wrap(label, getattr(owner, attribute)))
    fast = importlib.import_module("adapter.store.fast_insert")
    processed = fast._processed

    def by_table(rows: Any, processors: Any, keys: tuple[str, ...], convert: Any) -> Any:
        return _wrap(f"_processed (bind processors), first column {keys[0]}", processed)(
            rows, processors, keys, convert
        )

    fast._processed = by_table


def report(n: int) -> None:
    """Print the totals per message (``n`` messages) and zero them."""
    for label, spent in cpu.most_common():
        print(f"  {spent * 1000 / n:7.3f} ms/msg  {calls[label] / n:6.2f} calls/msg  {label}")
    cpu.clear()
    calls.clear()
