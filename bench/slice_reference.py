"""A host-speed reference for ``bench_ingest --slices`` (decision 0135).

On the shared 2-core host the same work costs ±25 % CPU from minute to minute (neighbours on
the other hyperthread, frequency), so a slice's raw cost cannot say whether the store grew
slower. Around every slice the bench therefore runs a fixed workload: the bulk floor
(``Floor.ingest_many``) of the slice's first messages into an *empty* store of the same
backend (a copy of a migrated SQLite file; on PostgreSQL a second schema emptied with
TRUNCATE). Its cost does not depend on the growing store, only on the host, so a slice's
cost divided by the mean of the references before and after it is a figure load moves far
less. The raw figures are printed too.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from adapter.heap import settled
from adapter.store import make_engine, migrate

REFERENCE_MESSAGES = 1000  # of each slice, the floor's workload (about 1-3 s)


@dataclass(slots=True)
class Cost:
    """Per message: this process's CPU and the wall clock, in ms."""

    cpu_ms: float
    wall_ms: float


class Reference:
    """The floor's bulk of a fixed count of messages into an empty store, timed."""

    def __init__(
        self,
        make_floor: Callable[[Engine], Any],
        sqlite_folder: Path | None = None,
        pg: tuple[Engine, Callable[[], None]] | None = None,
        batch: int = 100,
    ) -> None:
        self.make_floor = make_floor
        self.batch = batch
        self.folder = sqlite_folder
        self.pg = pg
        if sqlite_folder is not None:
            engine = make_engine(f"sqlite:///{sqlite_folder / 'template.db'}")
            migrate(engine)
            engine.dispose()
        elif pg is not None:
            migrate(pg[0])

    def _empty_engine(self) -> Engine:
        if self.folder is not None:
            target = self.folder / "reference.db"
            for leftover in self.folder.glob("reference.db*"):
                leftover.unlink()
            shutil.copyfile(self.folder / "template.db", target)
            return make_engine(f"sqlite:///{target}")
        assert self.pg is not None
        engine = self.pg[0]
        with engine.begin() as conn:
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                )
            ).fetchall()
            names = ", ".join(f'"{name}"' for (name,) in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return engine

    def measure(self, messages: list[tuple[str, bytes]]) -> Cost:
        chosen = messages[:REFERENCE_MESSAGES]
        engine = self._empty_engine()
        floor = self.make_floor(engine)
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            with settled():
                floor.ingest_many(chosen, self.batch)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            floor.close()
            if self.folder is not None:
                engine.dispose()
        return Cost(cpu * 1000 / len(chosen), wall * 1000 / len(chosen))

    def close(self) -> None:
        if self.pg is not None:
            self.pg[1]()


def fitted_growth(values: list[float]) -> float:
    """The least-squares line through ``values`` (one a slice): its last point against its
    first, minus one. Less moved by one odd slice than last / first."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / sum(
        (x - mean_x) ** 2 for x in range(n)
    )
    first = mean_y - slope * mean_x
    return (first + slope * (n - 1)) / first - 1
