"""adapter sync from a FHIR server on loopback: Bulk Data $export (kick-off, polling with
Retry-After, NDJSON, deleted[]) with 1 % of the day's resources missing from the export,
found by identifier and replayed; a server that does not answer gives exit 2."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.sync.bulk_server import BulkServer, running_bulk_server
from tests.sync.support import (
    FACILITY,
    FHIR_SOURCE,
    consortium_file,
    environment,
    run_cli,
    sync_json,
)

DAY = date(2026, 11, 20)
KEY_SYSTEM = "https://qingshan.example.cn/fhir/sid/county-hospital/lab-result"


def _observation(number: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"obs-{number}",
        "meta": {"lastUpdated": f"2026-11-20T{8 + number // 60:02d}:{number % 60:02d}:00+08:00"},
        "identifier": [{"system": KEY_SYSTEM, "value": f"OBS-{number:05d}"}],
        "status": "final",
        "code": {"text": "葡萄糖"},
        "valueQuantity": {"value": number / 10, "unit": "mmol/L"},
    }


def _source(base_url: str, mode: str) -> dict[str, Any]:
    return {
        "id": "county-fhir-night",
        "facility": FACILITY,
        "source": FHIR_SOURCE,
        "document_kind": "lab-result",
        "fhir": {
            "base_url": base_url,
            "resource_type": "Observation",
            "key_system": KEY_SYSTEM,
            "mode": mode,
        },
    }


def test_bulk_export_with_1_percent_missing_finds_and_replays_them_and_reports_deletions(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = BulkServer(
        resources=[_observation(n) for n in range(1, 101)],
        omit={"Observation/obs-37"},
        deleted=["Observation/gone"],
    )
    with running_bulk_server(server):
        env = environment(
            database_url, consortium_file(tmp_path, [_source(server.base_url, "bulk")])
        )
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 1, report
        assert server.kick_offs == 1 and server.polls == 3  # two 202 + Retry-After, then done
        [part] = report["sources"]
        assert part["source"]["count"] == 100
        assert part["gaps"]["missing"] == ["OBS-00037"]
        assert part["deleted"] == ["Observation/gone"]
        assert part["received"]["processed"] == 99

        code, report = sync_json(
            env, "--day", DAY.isoformat(), "--replay-gaps", monkeypatch=monkeypatch
        )
        assert code == 0, report
        assert report["sources"][0]["replayed"] == ["OBS-00037"]
        assert server.kick_offs == 1  # the replay searched by identifier, no new export


def test_search_window_reads_the_day_and_the_server_count_agrees(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = BulkServer(resources=[_observation(n) for n in range(1, 21)])
    with running_bulk_server(server):
        env = environment(
            database_url, consortium_file(tmp_path, [_source(server.base_url, "search")])
        )
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
        assert code == 0, report
        [part] = report["sources"]
        assert part["source"] == {"how": "search + _summary=count", "count": 20, "listed": 20}
        assert part["received"]["processed"] == 20


def test_a_fhir_server_not_answering_exits_2_with_the_reason(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = BulkServer(down=True)
    with running_bulk_server(server):
        env = environment(
            database_url, consortium_file(tmp_path, [_source(server.base_url, "search")])
        )
        code, text = run_cli(
            env, "sync", "--day", DAY.isoformat(), "--lang", "en", monkeypatch=monkeypatch
        )
    assert code == 2
    assert f"source unreachable: {server.base_url}: " in text, text
