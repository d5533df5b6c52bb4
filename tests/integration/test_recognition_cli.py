"""``adapter recognition ...`` run in-process with CliRunner against the test database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from adapter.cli import app
from adapter.settings import get_settings
from tests.api.recognition_fixtures import PATIENT, seed

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
AT = "2026-11-26T10:00:00+08:00"


@pytest.fixture
def env(database_url: str, session_factory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    seed(session_factory)
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(FIXTURES / "consortium.yaml"))
    monkeypatch.delenv("ADAPTER_RECOGNITION_CATALOGUE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(*args: Any) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_check_prints_the_catalogue(env) -> None:
    result = run("recognition", "check")
    assert result.exit_code == 0, result.output
    assert "edition 2026.2" in result.output
    assert "20 items (6 exam, 14 lab), 3 qualified facilities, 8 reasons" in result.output


def test_query_prints_each_result_with_its_reason(env) -> None:
    result = run("recognition", "query", PATIENT, "-c", "QS-JY-001", "-c", "QS-JY-002", "--at", AT)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "QS-JY-001 白细胞计数 (WBC) [HR]: recognisable" in lines
    assert any(
        line.startswith("  Observation/sq-wbc-new  shiqiao-township-centre  2026-11-24 08:45  yes")
        for line in lines
    )
    assert any("Observation/lh-rbc " in line and "eqa-expired" in line for line in lines)


def test_query_by_local_code_as_json(env) -> None:
    result = run(
        "recognition",
        "query",
        PATIENT,
        "--local-code",
        "1001",
        "-f",
        "qingshan-county-hospital",
        "--at",
        AT,
        "--json",
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["resourceType"] == "Parameters"
    item = next(p for p in body["parameter"] if p["name"] == "item")["part"]
    assert {"name": "asked", "valueString": "1001"} in item
    assert {"name": "outcome", "valueCode": "recognisable"} in item


def test_query_exits_1_when_nothing_is_recognisable_and_2_on_bad_input(env) -> None:
    result = run("recognition", "query", PATIENT, "-c", "QS-JC-004", "--at", AT)
    assert result.exit_code == 1
    assert "not: no-prior-result" in result.output
    assert run("recognition", "query", PATIENT, "--local-code", "1001").exit_code == 2
    assert run("recognition", "query", PATIENT, "--at", "2026-11-26").exit_code == 2
    unknown = run("recognition", "query", "nobody", "-c", "QS-JY-001")
    assert unknown.exit_code == 1 and "Patient/nobody is not known" in unknown.output


def test_a_broken_catalogue_stops_the_command_with_file_and_line(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (FIXTURES / "recognition.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "recognition.yaml"
    broken.write_text(text.replace("    kind: 检查\n", "    kind: 影像\n", 1), encoding="utf-8")
    line = text.splitlines().index("    kind: 检查") + 1
    monkeypatch.setenv("ADAPTER_RECOGNITION_CATALOGUE", str(broken))
    get_settings.cache_clear()
    result = run("recognition", "check")
    assert result.exit_code == 2
    assert f"cannot start: {broken}:{line}:items." in result.output


def test_decide_records_once_and_rate_counts_it(env) -> None:
    args = [
        "recognition",
        "decide",
        PATIENT,
        "-i",
        "QS-JY-001",
        "--order",
        "ZY2026112601",
        "-f",
        "qingshan-county-hospital",
        "--doctor",
        "D0412",
        "--recognised",
        "--prior",
        "Observation/sq-wbc-new",
        "--at",
        "2026-11-26T10:05:00+08:00",
    ]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("recorded: Task/") and "version 1" in first.output
    again = run(*args)
    assert again.output.startswith("already recorded: Task/") and "version 1" in again.output
    refused = run(
        "recognition", "decide", PATIENT, "-i", "QS-JC-001", "--order", "ZY2026112601",
        "-f", "qingshan-county-hospital", "--doctor", "D0412", "--not-recognised",
        "--reason", "other", "--at", "2026-11-26T10:06:00+08:00",
    )  # fmt: skip
    assert refused.exit_code == 1 and "needs reason-text" in refused.output
    other = run(
        "recognition", "decide", PATIENT, "-i", "QS-JC-001", "--order", "ZY2026112601",
        "-f", "qingshan-county-hospital", "--doctor", "D0412", "--not-recognised",
        "--reason", "other", "--text", "患者要求复查", "--at", "2026-11-26T10:06:00+08:00",
    )  # fmt: skip
    assert other.exit_code == 0, other.output
    rates = run("recognition", "rate", "--month", "2026-11")
    assert rates.exit_code == 0, rates.output
    assert "2026-11: 1 of 2 recognised (50.0%)" in rates.output
    assert any("QS-JC-001" in line and "other 1" in line for line in rates.output.splitlines())
    as_json = json.loads(run("recognition", "rate", "--month", "2026-11", "--json").output)
    assert {r["item"]: r["rate"] for r in as_json} == {"QS-JC-001": 0.0, "QS-JY-001": 1.0}
    assert run("recognition", "rate", "--month", "November").exit_code == 2
