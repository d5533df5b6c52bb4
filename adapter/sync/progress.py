"""Progress of a sync on the terminal: a redrawn line with counts, rate and ETA on a tty,
plain lines (every 10 seconds and at the end of each source) otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from adapter.sync.run import Progress


def terminal_progress(stream: TextIO | None = None) -> Progress:
    out = stream or sys.stderr
    tty = out.isatty()
    state: dict[str, object] = {}

    def start(source: str, total: int | None) -> None:
        state.update(source=source, total=total, t0=time.monotonic(), first=None, last=0.0, done=0)

    def line(done: int) -> str:
        elapsed = max(time.monotonic() - float(state["t0"]), 1e-6)  # type: ignore[arg-type]
        first = state["first"] if state["first"] is not None else done
        rate = (done - int(first)) / elapsed  # type: ignore[call-overload]
        total = state["total"]
        text = f"{state['source']}: {done}"
        if isinstance(total, int) and total:
            text += f"/{total} ({min(done, total) * 100 // total}%)"
            if rate > 0 and done < total:
                text += f" ETA {int((total - done) / rate)} s"
        return text + f" {rate:.1f}/s"

    def step(done: int) -> None:
        if state.get("first") is None:
            state["first"] = done
        state["done"] = done
        now = time.monotonic()
        if tty:
            if now - float(state["last"]) >= 0.2:  # type: ignore[arg-type]
                out.write("\r" + line(done) + "\x1b[K")
                out.flush()
                state["last"] = now
        elif now - float(state["last"]) >= 10:  # type: ignore[arg-type]
            if state["last"]:
                out.write(line(done) + "\n")
                out.flush()
            state["last"] = now

    def end() -> None:
        if "source" not in state:
            return
        text = line(int(state["done"]))  # type: ignore[call-overload]
        out.write(("\r" + text + "\x1b[K\n") if tty else text + "\n")
        out.flush()

    return Progress(start=start, step=step, end=end)
