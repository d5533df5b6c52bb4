"""CPU per log call through ``configure_logging`` (the record factory's redaction, the
handler's filter, the text format, the write; stderr to /dev/null): the drain's per-message
line and the access line (decision 0107). Min of 5 rounds of 2,000 calls, thread CPU.

    .venv/bin/python bench/log_line_cpu.py 2>/dev/null
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapter.logs import configure_logging


def main() -> None:
    configure_logging("INFO")
    stored = logging.getLogger("adapter.pipeline.steps")
    access = logging.getLogger("adapter.access")
    ids = [str(uuid.uuid4()) for _ in range(2000)]

    def round_() -> tuple[float, float]:
        start = time.thread_time()
        for i in ids:
            stored.info(
                "message %s from %s: %d resources (%d changed), %d outbox rows",
                *(i, "lis-huikang", 14, 12, 13),
            )
        middle = time.thread_time()
        for _ in ids:
            access.info('%s "%s %s" %d %.1fms', "127.0.0.1:54321", "POST", "/ingest", 202, 12.3)
        end = time.thread_time()
        return (middle - start) / len(ids) * 1e6, (end - middle) / len(ids) * 1e6

    round_()
    rounds = [round_() for _ in range(5)]
    print(
        f"stored line {min(r[0] for r in rounds):.1f} µs, "
        f"access line {min(r[1] for r in rounds):.1f} µs per call",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
