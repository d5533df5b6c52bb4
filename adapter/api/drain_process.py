"""The server's drain in a process of its own (decision 0102): ``adapter serve`` with
translation workers (``ADAPTER_TRANSLATE_WORKERS`` ≥ 1) starts it, unless
``ADAPTER_INGEST_DRAIN_PROCESS=false``.

In the server's own thread (decision 0063) the drain's store (~5.5 ms of CPU per message)
shares one GIL with the event loop and the receipts (~1.8 ms): one core for all three,
≤ 137 messages/s end to end even with the second core idle. Here the store has its own
interpreter; the server only receives and answers.

The server wakes it at every receipt it commits (one byte on a pipe, written without
blocking: a full pipe already holds a wake-up), so it does not poll; it also looks every
second for documents other processes received. It stops after the batch under way when
the pipe closes: the server stopping, or killed (the kernel closes the pipe then). A drain
killed itself rolls its batch back: the documents stay ``received`` for the next drain,
as with ``adapter drain --follow`` (what this process runs: ``Drainer``)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from adapter.pipeline.drain import DEFER_SECONDS

if TYPE_CHECKING:
    from adapter.settings import Settings

log = logging.getLogger(__name__)
PROCESS_NAME = "adapter-drain-process"


def drain_defer_seconds(settings: Settings, *, apart: bool) -> float:
    """How long the drain lets a burst of receipts go first: the configured value, else 2 s
    (decision 0063), except on PostgreSQL when the drain has a process of its own (decision
    0111). The defer kept the store off the receipts' interpreter lock (gone in a process of
    its own) and off SQLite's one write lock (still there: on SQLite each receipt would wait
    for the drain's batch); PostgreSQL's receipts and batches commit side by side, so there
    the wait only leaves the cores idle through the burst."""
    if settings.ingest_drain_defer_seconds is not None:
        return settings.ingest_drain_defer_seconds
    if apart and make_url(settings.database_url).get_backend_name() in ("postgresql", "postgres"):
        return 0.0
    return DEFER_SECONDS


class DrainProcess:
    """The parent's handle: ``wake`` after each receipt, ``stop`` at shutdown. A drain
    process that died (killed, out of memory) is started again at the next receipt, at
    most every RESTART_SECONDS; meanwhile the documents wait, ``received``."""

    RESTART_SECONDS = 10.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._writer: Connection | None = None
        self._started = 0.0
        self._stopped = False
        self._start()

    def _start(self) -> None:
        reader, writer = multiprocessing.Pipe(duplex=False)
        context = multiprocessing.get_context("spawn")  # nothing of the server's threads
        self._process: BaseProcess = context.Process(
            target=_run, args=(self.settings, reader), name=PROCESS_NAME, daemon=False
        )
        self._process.start()
        self._started = time.monotonic()
        reader.close()  # the child's end: EOF reaches the child once this side closes
        os.set_blocking(writer.fileno(), False)
        self._writer = writer

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def wake(self) -> None:
        """A receipt was committed (ReceiptCommit.on_received, a receipt thread)."""
        with self._lock:
            if self._stopped:
                return
            if self._writer is not None and not self._process.is_alive():
                # (a write may still succeed: a worker it started can outlive it a moment)
                log.error("drain process %s ended (%s)", self._process.pid, self._process.exitcode)
                self._writer.close()
                self._writer = None
            if self._writer is not None:
                try:
                    os.write(self._writer.fileno(), b"\x01")
                    return
                except BlockingIOError:
                    return  # the pipe is full of wake-ups not read yet: one is enough
                except OSError as exc:  # the drain process is gone
                    log.error("drain process %s ended (%s)", self._process.pid, exc)
                    self._writer.close()
                    self._writer = None
            if time.monotonic() - self._started >= self.RESTART_SECONDS:
                self._process.join(0)
                log.warning("drain process: started again; the documents received wait")
                self._start()

    def stop(self, timeout: float = 60.0) -> None:
        """Close the pipe: the drain stops after the batch under way."""
        with self._lock:
            self._stopped = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._process.join(timeout)
        if self._process.is_alive():  # a batch longer than the timeout: rolled back whole
            log.warning("drain process: still busy after %.0f s, terminated", timeout)
            self._process.terminate()
            self._process.join(10)


def _run(settings: Settings, wakes: Connection) -> None:
    """The child: a ``Drainer`` woken by every byte read, until the pipe closes."""
    # Ctrl-C reaches the whole process group: the server stops first and closes the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from adapter.commands.common import configure_logs
    from adapter.heap import settled
    from adapter.pipeline.drain import Drainer
    from adapter.runtime import build_runtime

    configure_logs(settings)
    runtime = build_runtime(settings, run_migrations=False, publish=False)
    assert runtime.pipeline is not None
    drainer = Drainer(
        runtime.pipeline,
        batch=settings.ingest_drain_batch,
        defer_seconds=drain_defer_seconds(settings, apart=True),
        workers=settings.translate_workers or 0,
    )
    fd = wakes.fileno()
    try:
        with settled():  # start-up's objects out of the collector's full passes
            drainer.start()
            while os.read(fd, 4096):
                drainer.wake()
    finally:
        drainer.stop()
        runtime.close()
