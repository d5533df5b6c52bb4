"""The operating system's name of the calling thread (Linux: ``top -H``, ``ps -L``, and
/proc/PID/task/TID/comm, which bench/bench_post_ingest.py reads to tell the drain's CPU
from the receipts'). Python 3.11 names its threads only for itself."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_PR_SET_NAME = 15  # prctl(2)


def name_os_thread(name: str) -> None:
    """Name the calling thread (at most 15 bytes are kept); nothing where not Linux."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode("ascii")[:15], 0, 0, 0)
    except (OSError, AttributeError):  # no libc to call: the name is only a convenience
        return
