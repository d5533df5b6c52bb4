"""Bench only: profile every thread of a Python process with cProfile.

Python imports ``sitecustomize`` at start-up from ``sys.path``; ``bench_post_ingest.py
--profile FILE`` puts this folder on the server's PYTHONPATH and sets BENCH_PROFILE_FILE,
so the real ``adapter serve`` process runs unchanged, profiled: the main thread (the event
loop: uvicorn, the middlewares, FastAPI) and each thread started later (the threadpool:
the pipeline) get a ``cProfile.Profile`` of their own; at exit they are merged into FILE
(``python -m pstats FILE``). Without BENCH_PROFILE_FILE this does nothing. Times are each
thread's CPU time (``time.thread_time_ns``), or wall time with BENCH_PROFILE_CLOCK=wall.

SIGUSR1 marks the start of what counts: the profile written is what happened after the
last SIGUSR1 (each profiler's statistics then are subtracted at the end), so start-up
and warm-up stay out of it.

cProfile's cost per call roughly doubles Python's share of the time: read the shares.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time

_FILE = os.environ.get("BENCH_PROFILE_FILE")


def _install(path: str) -> None:
    import cProfile
    import marshal
    import pstats

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    # CPU time of the thread by default: with several threads (and other processes) on the
    # cores, wall time would count the time a thread waits for the GIL or for a core
    wall = os.environ.get("BENCH_PROFILE_CLOCK") == "wall"

    def start() -> None:
        profile = cProfile.Profile() if wall else cProfile.Profile(time.thread_time_ns, 1e-9)
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces the bootstrap below for this thread

    def bootstrap(frame, event, arg):  # type: ignore[no-untyped-def]
        start()

    marks: dict[int, dict] = {}  # type: ignore[type-arg]

    def mark(signum, frame):  # type: ignore[no-untyped-def]
        with lock:
            for profile in profiles:
                # snapshot without disable(): the other threads' profilers are still set
                profile.snapshot_stats()
                marks[id(profile)] = profile.stats

    def dump() -> None:
        import multiprocessing

        if multiprocessing.parent_process() is not None:
            return  # a translation worker (it inherits the variable): the server's file
        merged: pstats.Stats | None = None
        for profile in profiles:
            profile.snapshot_stats()
            holder = _Snapshot(_minus(profile.stats, marks.get(id(profile), {})))
            merged = pstats.Stats(holder) if merged is None else merged.add(holder)  # type: ignore[arg-type]
        if merged is not None:
            with open(path, "wb") as out:
                marshal.dump(merged.stats, out)

    threading.setprofile(bootstrap)
    start()
    atexit.register(dump)
    # uvicorn re-raises the SIGTERM it caught once it has shut down, with the handler it
    # found at start-up restored: make that handler an ordinary exit, so atexit runs
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGUSR1, mark)


def _minus(after: dict, before: dict) -> dict:  # type: ignore[type-arg]
    """pstats entries (calls, primitive calls, own time, cumulative, callers) of ``after``
    less those of ``before``; what did not change is left out."""
    out = {}
    for key, (cc, nc, tt, ct, callers) in after.items():
        if key in before:
            bcc, bnc, btt, bct, bcallers = before[key]
            cc, nc, tt, ct = cc - bcc, nc - bnc, tt - btt, ct - bct
            callers = {
                k: tuple(a - b for a, b in zip(v, bcallers.get(k, (0,) * len(v)), strict=True))
                for k, v in callers.items()
            }
            callers = {k: v for k, v in callers.items() if any(v)}
        if nc:
            out[key] = (cc, nc, tt, ct, callers)
    return out


class _Snapshot:
    """What pstats.Stats accepts: an object whose ``create_stats`` leaves ``stats``."""

    def __init__(self, stats: dict) -> None:  # type: ignore[type-arg]
        self.stats = stats

    def create_stats(self) -> None:
        pass


# the server's drain process (decision 0131): BENCH_PROFILE_DRAIN_FILE profiles every process
# started with it (the server's spawned children inherit it) and the one whose
# multiprocessing name is the drain process's writes its whole life's profile there at exit
_DRAIN_FILE = os.environ.get("BENCH_PROFILE_DRAIN_FILE")


def _install_drain(path: str) -> None:
    import cProfile
    import marshal

    profiles: list[cProfile.Profile] = []

    def bootstrap(frame, event, arg):  # type: ignore[no-untyped-def]
        profile = cProfile.Profile(time.thread_time_ns, 1e-9)
        profiles.append(profile)
        profile.enable()

    def dump() -> None:
        import multiprocessing
        import pstats

        if multiprocessing.current_process().name != "adapter-drain-process":
            return
        merged: pstats.Stats | None = None
        for profile in profiles:
            profile.snapshot_stats()
            holder = _Snapshot(profile.stats)
            merged = pstats.Stats(holder) if merged is None else merged.add(holder)  # type: ignore[arg-type]
        if merged is not None:
            with open(path, "wb") as out:
                marshal.dump(merged.stats, out)

    threading.setprofile(bootstrap)
    bootstrap(None, None, None)
    atexit.register(dump)


if _DRAIN_FILE and not _FILE and "multiprocessing" in " ".join(sys.orig_argv):
    _install_drain(_DRAIN_FILE)

if _FILE:
    # the server's process only: its drain process, translation workers and multiprocessing's
    # resource tracker (which has no parent process to tell it apart, and wrote its own
    # empty profile over the server's at exit) start without it (drain_cpu.py profiles the
    # drain)
    del os.environ["BENCH_PROFILE_FILE"]
    _install(_FILE)

if os.environ.get("BENCH_STAGES_FILE"):
    import stages  # beside this file

    _reset = stages.install(os.environ["BENCH_STAGES_FILE"])
    _previous = signal.getsignal(signal.SIGUSR1)  # the profile's mark, when both are on

    def _mark_both(signum, frame):  # type: ignore[no-untyped-def]
        _reset()
        if callable(_previous):
            _previous(signum, frame)

    signal.signal(signal.SIGUSR1, _mark_both)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
