"""Fuzzing the query parameters of the FHIR search API and the listings (issue 8): NUL bytes,
huge and odd numbers, odd Unicode, over-long values, every search parameter and modifier
of every served type. Whatever the values, the answer is never a 5xx: a Bundle, or a 4xx
OperationOutcome whose issues name the parameter.

The database holds a few ingested messages so that searches reach real index rows. Runs on
PostgreSQL too (the ``db`` pass), where a NUL character or an out-of-range number would
otherwise fail inside the query."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.api.app import create_app
from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES
from adapter.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("ADAPTER_FUZZ_EXAMPLES", "40")) * 2
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RESULT_PARAMS = ["_count", "_offset", "_sort", "_total", "_summary", "_format", "_id"]
MODIFIERS = ["", ":exact", ":contains", ":missing", ":not", ":text", ":Patient", ":below", ":x"]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "zz"]

odd_text = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "%00",
        "\x01\x1f\x7f",
        "\ufeff",
        "\ud7ff\ue000\uffff",
        "\U0001f600",
        "\u202e",
        "𠀀䶵龥",
        "张三",
        "|",
        "||",
        "a|b|c",
        "\\",
        "\\,",
        ",",
        "$",
        "*",
        "'; DROP TABLE resource; --",
        "%",
        "_",
        "Patient/",
        "Patient/../x",
        "urn:uuid:",
        "http://x/Patient/1",
    ]
)
odd_number = st.sampled_from(
    [
        "1e309",
        "-1e309",
        "0e999",
        "1e-400",
        "1e" + "9" * 5000,
        "9" * 20,
        "9" * 400,
        "100000000000000000000",
        "-1",
        "1.5",
        "NaN",
        "inf",
        "１２",
        "²",
        "0x10",
        "2026-13-45",
        "2026-02-30T25:61:61+15:00",
        "99999-01-01",
        "0000",
        "2026-11-20T08:00:00 08:00",
    ]
)
value = st.one_of(
    odd_text,
    odd_number,
    st.builds(lambda p, n: p + n, st.sampled_from(PREFIXES), odd_number),
    st.text(max_size=40),
    st.text(min_size=3000, max_size=5000),  # over-long
    st.builds(lambda a, b: f"{a}|{b}", st.text(max_size=10), st.text(max_size=10)),
)


@st.composite
def query(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    resource_type = draw(st.sampled_from([*SUPPORTED_TYPES, "Nothing"]))
    names = [*RESULT_PARAMS, *RESOURCES.get(resource_type, RESOURCES["Patient"]).params]
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(names) | odd_text)
        pairs.append((name + draw(st.sampled_from(MODIFIERS)), draw(value)))
    return resource_type, pairs


@pytest.fixture(scope="module")
def search_app(module_database_url: str) -> Iterator[FastAPI]:
    app = create_app(Settings(database_url=module_database_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def search_client(search_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(search_app, raise_server_exceptions=False) as client:
        for path in sorted((ROOT / "fixtures/hl7v2/oru/std-hl7v2").glob("*.hl7"))[:4]:
            client.post(
                "/ingest",
                content=path.read_bytes(),
                headers={"X-Source-System": "std-hl7v2", "Content-Type": "x/hl7"},
            )
        yield client


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert all(i.get("location") or i["code"] == "not-found" for i in body["issue"]), body


@FUZZ
@given(case=query())
def test_fhir_search_never_answers_5xx(search_client: TestClient, case) -> None:
    resource_type, pairs = case
    _check(search_client.get(f"/fhir/{resource_type}?{urlencode(pairs)}"))
    _check(search_client.post(f"/fhir/{resource_type}/_search", data=dict(pairs)))


@FUZZ
@given(name=st.sampled_from(["status", "limit", "offset", "state", "destination"]), v=value)
def test_listings_never_answer_5xx(search_client: TestClient, name: str, v: str) -> None:
    for path in ("/messages", "/deliveries"):
        _check(search_client.get(f"{path}?{urlencode({name: v})}"))


@FUZZ
@given(resource_type=st.sampled_from(SUPPORTED_TYPES), v=value)
def test_read_and_history_never_answer_5xx(
    search_client: TestClient, resource_type: str, v: str
) -> None:
    from urllib.parse import quote

    _check(search_client.get(f"/fhir/{resource_type}/{quote(v, safe='')}"))
    _check(search_client.get(f"/fhir/{resource_type}/x/_history?{urlencode({'_offset': v})}"))
    _check(search_client.get(f"/messages/{quote(v, safe='')}"))
