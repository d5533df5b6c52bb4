"""``adapter sync --jobs N``: the sources of one run shared out among N child processes.

The parent opens the run as always (every window written before anything is read), plans
the shares here, starts one child per share (the same CLI with the hidden ``--share RUN``
option and the share's ``--source``s), waits, then reconciles and reports from the ledger
alone. A child reads its sources exactly as a one-process run would (windows and
checkpoints from the run row), so a killed child, or a killed parent, leaves a run that the
next start resumes from its checkpoints. Decision 0061.

Shares are balanced longest-processing-time-first over each source's expected cost: its
document count for this window (the fetcher's own total: a manifest, a listing, a count
query) times its seconds per document in the latest finished run that read it, else times a
weight of its format (measured: a CDA document costs about 1.3 lab messages), else equal.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapter.store.models import SyncRun

log = logging.getLogger(__name__)

# CPU per document of the sync process relative to a lab message (HL7 v2), measured on
# bench_night's night with --jobs 1 (decision 0061): used until a source has a history.
FORMAT_WEIGHTS = {"hl7v2": 1.0, "cda": 1.3, "xml": 1.3, "json": 1.0, "csv": 1.0}

SHARE_LINE = "share"  # the child's last stdout line: {"share": {"errors": {...}}}


# -- expected cost and the plan --------------------------------------------------------------


def seconds_per_document(session: Session, sources: list[str], runs: int = 20) -> dict[str, float]:
    """Each source's seconds per document in the latest finished run that read some of its
    documents (what its final checkpoint recorded)."""
    found: dict[str, float] = {}
    rows = session.scalars(
        select(SyncRun)
        .where(SyncRun.state == "done", SyncRun.replay.is_(False))
        .order_by(SyncRun.started_at.desc())
        .limit(runs)
    )
    for run in rows:
        for source, point in (run.checkpoints or {}).items():
            if source in sources and source not in found and isinstance(point, dict):
                read, seconds = point.get("read"), point.get("seconds")
                if isinstance(read, int) and read > 0 and isinstance(seconds, int | float):
                    found[source] = float(seconds) / read
    return found


def expected_costs(
    sources: list[str],
    counts: dict[str, int | None],
    per_document: dict[str, float],
    formats: dict[str, str],
) -> dict[str, float]:
    """Count times seconds per document when every source has a history, else count times
    its format's weight; an unknown count is the mean of the known ones (all unknown: 1)."""
    known = [c for c in counts.values() if c is not None]
    fill = sum(known) / len(known) if known else 1.0
    measured = all(s in per_document for s in sources)
    costs: dict[str, float] = {}
    for source in sources:
        count = counts.get(source)
        each = (
            per_document[source] if measured else FORMAT_WEIGHTS.get(formats.get(source, ""), 1.0)
        )
        costs[source] = (fill if count is None else count) * each
    return costs


def plan(costs: dict[str, float], jobs: int) -> list[list[str]]:
    """Longest processing time first: the costliest source goes to the share with the least
    cost so far (ties: the earlier source, the earlier share). Empty shares are dropped."""
    shares: list[list[str]] = [[] for _ in range(max(1, jobs))]
    loads = [0.0] * len(shares)
    order = sorted(costs, key=lambda s: (-costs[s], list(costs).index(s)))
    for source in order:
        least = min(range(len(shares)), key=lambda i: (loads[i], i))
        shares[least].append(source)
        loads[least] += costs[source]
    return [s for s in shares if s]


# -- the child ------------------------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """A share's process must not outlive the run's parent (killed with SIGKILL, it cannot
    stop its children): Linux sends SIGKILL at its death (PR_SET_PDEATHSIG); elsewhere a
    thread notices the re-parenting. A killed child is a resumable run: nothing is lost."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(3)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


class ChildProgress:
    """The child's side of the combined progress: one JSON line on stdout per event (a
    batch of ``checkpoint_every`` documents at most every 0.5 s)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.source = ""
        self.done = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def start(self, source: str, total: int | None) -> None:
        self.source = source
        self.emit({"start": source, "total": total})

    def step(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.emit({"step": self.source, "done": done})

    def end(self) -> None:
        self.emit({"step": self.source, "done": self.done})


# -- the parent -----------------------------------------------------------------------------


@dataclass
class Child:
    share: list[str]
    process: subprocess.Popen[str]
    errors: dict[str, str] | None = None  # None until its last line arrives
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    readers: list[threading.Thread] = field(default_factory=list)


@dataclass
class Combined:
    """The children's progress summed: documents done over the night's total."""

    step: Callable[[int], None]
    done: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, source: str, done: int) -> None:
        with self.lock:
            self.done[source] = done
            self.step(sum(self.done.values()))


def share_command(run_id: str, share: list[str], parent: int) -> list[str]:
    command = [sys.executable, "-m", "adapter.cli", "sync", "--share", f"{run_id}:{parent}"]
    for source in share:
        command += ["--source", source]
    return command


def child_environment(jobs: int, given: int | None) -> dict[str, str]:
    """The children's environment: unless ADAPTER_TRANSLATE_WORKERS is set, each starts
    the translation workers the cores left over by the other children allow (2 cores,
    2 jobs: none; decision 0061 measured that they then cost CPU and add no overlap)."""
    from adapter.pipeline.translation_pool import default_workers

    env = dict(os.environ)
    if given is None:
        env["ADAPTER_TRANSLATE_WORKERS"] = str(max(0, default_workers() - (jobs - 1)))
    return env


def run_children(
    run_id: str,
    shares: list[list[str]],
    combined: Combined,
    *,
    env: dict[str, str] | None = None,
    command: Callable[[str, list[str], int], list[str]] = share_command,
    cwd: Path | None = None,
) -> tuple[dict[str, str], bool]:
    """Start one child per share, forward their log lines to stderr, sum their progress,
    wait for all. Returns the errors by source (a source down; every unfinished source of a
    child that died, with how it died) and whether a child died (the run is then left
    unfinished, to be resumed)."""
    children: list[Child] = []
    errors: dict[str, str] = {}
    died = False
    try:
        for share in shares:
            process = subprocess.Popen(
                command(run_id, share, os.getpid()),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                cwd=cwd,
                env=env,
            )
            child = Child(share, process)
            child.readers = [
                threading.Thread(target=_read_events, args=(child, combined), daemon=True),
                threading.Thread(target=_forward_stderr, args=(child,), daemon=True),
            ]
            for reader in child.readers:
                reader.start()
            children.append(child)
            log.info("sync: share %d of run %s: %s", len(children), run_id, ", ".join(share))
        for child in children:
            code = child.process.wait()
            for reader in child.readers:
                reader.join()
            if code == 0 and child.errors is not None:
                errors.update(child.errors)
                continue
            died = True
            how = _how_it_ended(code)
            last = child.tail[-1] if child.tail else ""
            reason = f"the process synchronising this share ({how}) stopped before the end"
            reason += f": {last}" if last else ""
            for source in child.share:
                errors.setdefault(source, reason + "; start the run again to resume it")
    finally:
        for child in children:  # the parent interrupted (Ctrl-C): no child left running
            if child.process.poll() is None:
                child.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(10)
                if child.process.poll() is None:
                    child.process.kill()
                    child.process.wait()
    return errors, died


def _how_it_ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _events(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                yield event


def _read_events(child: Child, combined: Combined) -> None:
    assert child.process.stdout is not None
    for event in _events(child.process.stdout):
        if "step" in event:
            combined.set(str(event["step"]), int(event.get("done") or 0))
        elif SHARE_LINE in event:
            child.errors = dict((event[SHARE_LINE] or {}).get("errors") or {})


def _forward_stderr(child: Child) -> None:
    assert child.process.stderr is not None
    for line in child.process.stderr:
        sys.stderr.write(line)
        if line.strip():
            child.tail.append(line.strip()[-300:])
