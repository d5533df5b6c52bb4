"""``adapter recognition ...`` run in-process with CliRunner against the test database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
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
    assert "stored results recognisable when issued carry the mark in meta.tag" in result.output


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
    assert "20.00 yuan of tests avoided" in rates.output
    by_doctor = run("recognition", "rate", "--month", "2026-11", "--by", "doctor,item")
    assert any(line.startswith("D0412 QS-JY-001") for line in by_doctor.output.splitlines())
    assert run("recognition", "rate", "--month", "2026-11", "--by", "ward").exit_code == 2


def test_rate_spreadsheets_and_corrections(env, tmp_path, session_factory) -> None:
    from datetime import UTC, datetime

    from openpyxl import load_workbook

    from adapter.store import save_resources
    from tests.api.recognition_fixtures import RESULTS

    decided = run(
        "recognition", "decide", PATIENT, "-i", "QS-JY-001", "--order", "ZY2026112602",
        "-f", "qingshan-county-hospital", "--doctor", "D0412", "--recognised",
        "--prior", "Observation/sq-wbc-new", "--at", "2026-11-26T10:05:00+08:00",
    )  # fmt: skip
    assert decided.exit_code == 0, decided.output
    sheet = tmp_path / "rate.xlsx"
    written = run("recognition", "rate", "--month", "2026-11", "--out", sheet)
    assert written.exit_code == 0 and "1 rows written" in written.output
    rows = list(load_workbook(sheet).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("机构 facility", "项目 item") and rows[1][1] == "QS-JY-001"
    csv_file = tmp_path / "rate.csv"
    assert run("recognition", "rate", "--month", "2026-11", "--out", csv_file).exit_code == 0
    assert csv_file.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM for Excel
    assert run("recognition", "rate", "--month", "2026-11", "--out", "x.pdf").exit_code == 2

    none = run("recognition", "corrections")
    assert none.exit_code == 0 and "0 recognised results changed afterwards" in none.output
    wbc = next(r for _, rs in RESULTS for r in rs if r["id"] == "sq-wbc-new")
    with session_factory.begin() as session:
        save_resources(
            session,
            [{**wbc, "status": "cancelled"}],
            message_id=None,
            now=datetime.now(UTC),
            facility_id="shiqiao-township-centre",
        )
    listed = run("recognition", "corrections")
    assert listed.exit_code == 1
    assert "Observation/sq-wbc-new is now cancelled" in listed.output
    as_json = [
        json.loads(line) for line in run("recognition", "corrections", "--json").output.splitlines()
    ]
    assert as_json[0]["withdrawn"] is True and as_json[0]["order"] == "ZY2026112602"


def test_consent_and_its_withdrawal(env, session_factory) -> None:
    """``recognition consent`` stores an active FHIR Consent for the facility and period;
    ``revoke-consent`` makes it inactive. What counts: the facility named, inside the
    period (end exclusive), active, any record of the person."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from adapter.recognition.consent import consented
    from adapter.store.audit_log import AuditRecord
    from adapter.store.models import Resource

    zone = ZoneInfo("Asia/Shanghai")
    county, shiqiao = "qingshan-county-hospital", "shiqiao-township-centre"
    made = run(
        "recognition", "consent", PATIENT, "-f", county,
        "--from", "2026-11-26T08:00:00+08:00", "--until", "2026-12-03T00:00:00+08:00",
        "--by", "D0412",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    consent_id = made.stdout.split("Consent/")[1].split()[0]

    def allowed(facility: str, when: str) -> bool:
        with session_factory() as session:
            return consented(session, PATIENT, facility, datetime.fromisoformat(when), zone)

    assert allowed(county, "2026-11-26T08:00:00+08:00")
    assert allowed(county, "2026-12-02T23:59:59+08:00")
    assert not allowed(county, "2026-12-03T00:00:00+08:00")  # the end is exclusive
    assert not allowed(county, "2026-11-26T07:59:59+08:00")
    assert not allowed(shiqiao, "2026-11-27T10:00:00+08:00")  # another facility
    # another system's Consent ending on a date (no time) includes that whole day
    from adapter.recognition.consent import permits

    with session_factory() as session:
        body = dict(session.get(Resource, ("Consent", consent_id)).body)
    body["provision"] = {**body["provision"], "period": {"end": "2026-12-03"}}
    assert permits(body, county, datetime.fromisoformat("2026-12-03T23:59:59+08:00"), zone)
    assert not permits(body, county, datetime.fromisoformat("2026-12-04T00:00:00+08:00"), zone)
    assert not permits(
        {**body, "status": "inactive"}, county, datetime(2026, 12, 1, tzinfo=zone), zone
    )
    assert not permits({**body, "policy": []}, county, datetime(2026, 12, 1, tzinfo=zone), zone)
    # an unknown patient, a bad period: refused with the reason
    unknown = run(
        "recognition", "consent", "nobody", "-f", county, "--until", "2026-12-03T00:00+08:00"
    )  # fmt: skip
    assert unknown.exit_code == 1 and "Patient/nobody is not known" in unknown.output
    backwards = run(
        "recognition", "consent", PATIENT, "-f", county,
        "--from", "2026-12-03T00:00:00+08:00", "--until", "2026-12-01T00:00:00+08:00",
    )  # fmt: skip
    assert backwards.exit_code == 1 and "ends before it starts" in backwards.output
    revoked = run("recognition", "revoke-consent", consent_id)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked: Consent/{consent_id} version 2" in revoked.stdout
    assert not allowed(county, "2026-11-27T10:00:00+08:00")
    again = run("recognition", "revoke-consent", consent_id)
    assert "already inactive" in again.stdout
    with session_factory() as session:
        stored = session.get(Resource, ("Consent", consent_id))
        assert stored is not None and stored.body["status"] == "inactive"
        assert stored.patient_key == f"Patient/{PATIENT}"
        actions = [
            a
            for a in session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq))
            if a.startswith("consent.")
        ]
    assert actions == ["consent.recorded", "consent.revoked"]
