"""A longer run of the ingest fuzz suite, with counts: mutated fixtures of every input format
through POST /ingest on a real database (tests/fuzz/).

    .venv/bin/python scripts/fuzz_ingest.py [--examples 2000] [--formats hl7v2 xml json csv]
                                            [--database-url postgresql+psycopg://...]

Without --database-url a SQLite file in a temporary folder is used. For each format it
sends --examples inputs and checks each as the suite does (no 5xx, the input stored, every
issue located); it prints, per format and in total, the inputs sent, the distinct messages
stored by status, and how many issues were located. Exit code 1 with the failing input
printed when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from adapter.api.app import create_app
from adapter.logs import configure_logging
from adapter.settings import Settings
from tests.fuzz.harness import Tally, ingest_and_check
from tests.fuzz.mutations import CONTENT_TYPES, FORMATS, Sample, mutated


def run(fmt: str, examples: int, client: TestClient, app, tally: Tally) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=mutated(fmt))
    def check(case: tuple[Sample, bytes]) -> None:
        sample, raw = case
        ingest_and_check(
            client, app.state.session_factory, tally, sample.source, CONTENT_TYPES[fmt], raw
        )

    check()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=2000, help="inputs per format")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="fuzz-")
    url = args.database_url or f"sqlite:///{folder}/fuzz.db"
    configure_logging("ERROR")
    app = create_app(Settings(database_url=url))
    totals = Tally()
    failed = False
    with TestClient(app, raise_server_exceptions=False) as client:
        for fmt in args.formats:
            tally = Tally()
            tally.ids = totals.ids  # one database: distinct messages across formats
            start = time.perf_counter()
            try:
                run(fmt, args.examples, client, app, tally)
            except Exception as exc:  # hypothesis prints the failing input before this
                print(f"{fmt}: FAILED: {exc}", flush=True)
                failed = True
            seconds = time.perf_counter() - start
            print(f"{fmt:6} {tally.line()} ({seconds:.0f} s)", flush=True)
            totals.inputs += tally.inputs
            totals.statuses.update(tally.statuses)
            totals.issues += tally.issues
            totals.located += tally.located
            totals.codes.update(tally.codes)
    print(f"total  {totals.line()}")
    print("error codes of quarantined inputs:", dict(totals.codes.most_common()))
    print(f"database: {url}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
