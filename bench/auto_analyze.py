"""What autovacuum's ANALYZE does on a running PostgreSQL server, for benchmarks on a server
that has autovacuum off (the project's test server: ``SHOW autovacuum`` is ``off``).

Without it, a benchmark on a fresh schema plans every statement against tables the planner
takes for empty (sequential scans, foreign-key checks planned once and kept), which no
production server with the default settings does for long: measured 2026-12-04 with
``bench_night.py --documents 2000 --no-sqlite``, 19.7 documents/s and 19.7 ms of server CPU per
document without, 29.0 and 11.4 with an ANALYZE every 10 s.

The rule is autovacuum's: a table is analysed when the rows changed since its last analyse
exceed ``autovacuum_analyze_threshold`` (50) plus ``autovacuum_analyze_scale_factor`` (0.1)
times its rows, checked every ``naptime`` seconds. A 60-second check (the default
``autovacuum_naptime``) analysed nothing during 2-minute runs here (the statistics of the
sync's busy backend reach ``pg_stat_user_tables`` late); ``bench_night.py`` checks every 10 s.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

THRESHOLD = 50
SCALE_FACTOR = 0.1

DUE = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
    "WHERE s.schemaname = current_schema() "
    "AND s.n_mod_since_analyze > :threshold + :scale * greatest(c.reltuples, 0)"
)


class AutoAnalyze:
    """A thread analysing the tables of the engine's schema by autovacuum's rule."""

    def __init__(self, engine: Engine, naptime: float = 10.0) -> None:
        self.engine = engine
        self.naptime = naptime
        self.analyses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auto-analyze", daemon=True)

    def __enter__(self) -> AutoAnalyze:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.naptime):
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                params = {"threshold": THRESHOLD, "scale": SCALE_FACTOR}
                for (table,) in conn.execute(DUE, params).all():
                    conn.execute(text(f'ANALYZE "{table}"'))
                    self.analyses += 1
