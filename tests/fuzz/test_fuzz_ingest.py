"""Fuzzing every input format through POST /ingest on a real database (issue 8).

Real fixture messages of each format, mutated (tests/fuzz/mutations.py), are sent to the
FastAPI app; every input must be answered without a 5xx, stored (one inbound message row per
distinct input), and every issue of every stored message must name its location.

Budget: ``ADAPTER_FUZZ_EXAMPLES`` examples per format (default 40, about 10-15 s per format
on 2 cores). A longer run: ``ADAPTER_FUZZ_EXAMPLES=2000 bash scripts/test.sh tests/fuzz``,
or ``.venv/bin/python scripts/fuzz_ingest.py --examples 2000`` for the counts per format.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from adapter.api.app import create_app
from adapter.settings import Settings
from tests.fuzz.harness import Tally, ingest_and_check
from tests.fuzz.mutations import CONTENT_TYPES, FORMATS, Sample, mutated

EXAMPLES = int(os.environ.get("ADAPTER_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # every run draws afresh; a failure prints its input
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_app(module_database_url: str) -> Iterator[FastAPI]:
    app = create_app(Settings(database_url=module_database_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app: FastAPI) -> Iterator[TestClient]:
    # a 500 must show as a status, not be re-raised inside the test client
    with TestClient(fuzz_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_inputs_are_answered_stored_and_located(
    fmt: str, fuzz_app: FastAPI, fuzz_client: TestClient, tally: Tally
) -> None:
    @FUZZ
    @given(case=mutated(fmt))
    def check(case: tuple[Sample, bytes]) -> None:
        sample, raw = case
        ingest_and_check(
            fuzz_client,
            fuzz_app.state.session_factory,
            tally,
            sample.source,
            CONTENT_TYPES[fmt],
            raw,
        )

    check()
