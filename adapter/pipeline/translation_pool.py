"""Translation in worker processes while the store writes (decision 0054).

Bulk ingest (adapter/pipeline/bulk.py) translates a batch and then stores it, both in one
Python process, so a night used one core of the machine. With a pool, the batch's
documents are sent to worker processes as soon as the batch is known, and the store takes
each outcome in order as it arrives: translating document *n + 1* overlaps storing *n*.
Bulk ingest sends a batch in chunks of 1, 2, 4, then 8 documents, one round trip each
(``submit_many``): a round trip per document cost the storing process about a tenth of its
CPU in the pool's threads (decision 0066).

* The workers are started (``spawn``: nothing of the parent's database connections or
  threads is inherited) with the translator's settings and build their own Translator; a
  source's mappings are loaded in a worker the first time it translates for it.
* A pool lives for one run (``Pipeline.translation_workers``): mappings reloaded by the
  running service are picked up by the next run's workers.
* The outcome is the same object the parent would have made (``Translator.translate_for``),
  pickled back. If a worker fails (it died, it raised), the parent translates that document
  itself, as it always did; a worker that died ends the pool's use for the rest of the run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import Any

from adapter.heap import freeze_for_good
from adapter.pipeline.translator import Outcome, Translator
from adapter.store.resources import prepare

log = logging.getLogger(__name__)

# smaller batches are translated in the process itself: a round trip to a worker costs
# more than it saves when there is nothing to overlap
MIN_BATCH = 8
# documents per round trip at most (chunk_sizes): each round trip costs the storing
# process a wake-up of the pool's threads and the GIL handed back and forth (decision 0066)
CHUNK = 8

_worker_translator: Translator | None = None
_settled_sources: set[str] = set()  # sources whose mapping set this worker has frozen


def default_workers() -> int:
    """One worker per core beyond the one the store uses, at most 2; 0 on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(2, (cores or 1) - 1))


def _start(spec: dict[str, Any]) -> None:
    global _worker_translator
    logging.disable(logging.WARNING)  # the parent reports; a worker only translates
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    _worker_translator = Translator(**spec)
    freeze_for_good()


def _exit_with(parent: int) -> None:
    """A worker outlives a parent killed with SIGKILL (its queues hold both ends of their
    pipes, so it never reads an end of file): it leaves once it has been re-parented."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _translate(raw: bytes, source_system: str, message_id: str) -> Outcome:
    translator = _worker_translator
    assert translator is not None
    facility, source = translator.source(source_system)
    outcome = translator.translate_for(raw, facility, source, message_id)
    if not outcome.failed:
        # the store's derivations from the content, off the storing process (decision 0050,
        # amended 2026-12-05 bulkcpu); one that fails here fails there again, located. A
        # resource merged with its stored version (the Patient) too (decision 0078): a new
        # patient's merges with nothing and keeps its content, hence its hash; a repeat
        # patient's content may change in the store, which then derives them itself
        try:
            outcome.prepared = prepare(outcome.resources, translator.timezone)
        except Exception:
            outcome.prepared = None
    if source_system not in _settled_sources:
        # a source's mapping set is compiled on its first message: out of the collector's
        # full passes too (adapter/heap.py)
        _settled_sources.add(source_system)
        freeze_for_good()
    return outcome


def _translate_many(items: list[tuple[bytes, str, str]]) -> list[Outcome | None]:
    """Several documents in one round trip; None for one whose translation raised (the
    parent translates it again itself, and meets the same exception)."""
    outcomes: list[Outcome | None] = []
    for raw, source_system, message_id in items:
        try:
            outcomes.append(_translate(raw, source_system, message_id))
        except Exception:
            outcomes.append(None)
    return outcomes


def chunk_sizes(count: int, largest: int) -> list[int]:
    """1, 2, 4, ... up to ``largest`` documents per round trip: the store's first document
    comes back after one translation, the later ones in fewer, larger round trips."""
    sizes: list[int] = []
    size = 1
    while count > 0:
        sizes.append(min(size, count))
        count -= sizes[-1]
        size = min(2 * size, largest)
    return sizes


class TranslationPool:
    """Worker processes translating for one pipeline's translator."""

    def __init__(self, translator: Translator, workers: int) -> None:
        self.translator = translator
        self.workers = workers
        self.min_batch = MIN_BATCH
        self._executor: ProcessPoolExecutor | None = None
        self.broken = False

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self.translator.spec,),
            )
        return self._executor

    def usable(self, size: int) -> bool:
        return not self.broken and self.workers > 0 and size >= self.min_batch

    def submit(self, raw: bytes, source_system: str, message_id: str) -> Callable[[], Outcome]:
        """Start translating; the returned function gives the outcome (from the worker, or
        from this process if the worker failed)."""
        return self.submit_many([(raw, source_system, message_id)])[0]

    def submit_many(self, items: list[tuple[bytes, str, str]]) -> list[Callable[[], Outcome]]:
        """``submit`` for many documents (raw, source system, message id), in order, sent
        in chunks (``chunk_sizes``): one round trip per chunk, not per document."""
        getters: list[Callable[[], Outcome]] = []
        start = 0
        for size in chunk_sizes(len(items), CHUNK):
            chunk = items[start : start + size]
            start += size
            future: Future[list[Outcome | None]] | None = None
            if not self.broken:
                try:
                    future = self._pool().submit(_translate_many, chunk)
                except Exception as exc:  # the pool broke (a worker died): translate here
                    self._broke(exc)
            getters.extend(self._taker(future, k, item) for k, item in enumerate(chunk))
        return getters

    def _taker(
        self, future: Future[list[Outcome | None]] | None, k: int, item: tuple[bytes, str, str]
    ) -> Callable[[], Outcome]:
        def outcome() -> Outcome:
            if future is not None:
                try:
                    done = future.result()[k]
                    if done is not None:
                        return done
                except BrokenExecutor as exc:  # a worker died: no more workers this run
                    self._broke(exc)
                except Exception:  # as in ``submit``: translated here
                    pass
            raw, source_system, message_id = item
            facility, source = self.translator.source(source_system)
            return self.translator.translate_for(raw, facility, source, message_id)

        return outcome

    def _broke(self, exc: BaseException) -> None:
        if not self.broken:
            log.warning(
                "translation workers failed (%s); translating in the ingesting process",
                type(exc).__name__,
            )
        self.broken = True

    def pids(self) -> list[int]:
        """The worker processes' ids (none before the first batch that used them)."""
        executor = self._executor
        return [p.pid for p in (executor._processes or {}).values()] if executor else []

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
