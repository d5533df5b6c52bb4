"""A referral value longer than the 转诊台账 column it is kept in (adapter/pipeline/
stored_lengths.py), through POST /ingest on both databases.

Before the check, PostgreSQL refused the ledger row (SQLSTATE 22001) after the resources
were written: the whole CSV file was quarantined with an issue naming no place, and the
good rows were lost with it; SQLite stored the value whole. Now the value is refused
before the write, the same on both, located in the input and at the element; a CSV row is
left out and the other rows are stored; the issue never quotes the value.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import InboundMessage, ReferralLedger
from tests.integration.referral_support import ROOT

LEDGER_CSV = ROOT / "fixtures/csv/referral/liuhe-his-csv/ledger-two-slips.csv"
HL7_SLIP = ROOT / "fixtures/hl7v2/referral/std-hl7v2/up-slip.hl7"
JSON_SLIP = ROOT / "fixtures/json/referral/liuhe-his-json/down-slip.json"
CDA_SLIP = ROOT / "fixtures/cda/referral/std-cda/up-slip.xml"


def _csv(**changes: str) -> bytes:
    """The two-slip ledger with row 2's columns changed."""
    header, *rows = list(csv.reader(io.StringIO(LEDGER_CSV.read_text(encoding="utf-8"))))
    for column, value in changes.items():
        rows[0][header.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *rows])
    return out.getvalue().encode()


def _post(client: TestClient, source: str, content_type: str, raw: bytes) -> Any:
    answer = client.post(
        "/ingest", content=raw, headers={"X-Source-System": source, "Content-Type": content_type}
    )
    return answer


def _ledger(factory: sessionmaker[Session]) -> dict[str | None, ReferralLedger]:
    with factory() as session:
        return {row.slip_number: row for row in session.scalars(select(ReferralLedger))}


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in body["issue"] if i["severity"] == "error"]


def test_a_csv_row_with_a_slip_number_too_long_is_left_out_and_located(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    slip = "LH-ZZ-" + "9" * 250  # 256 characters: one more than referral_ledger.slip_number
    answer = _post(client, "liuhe-his-csv", "text/csv", _csv(转诊单号=slip))
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["status"] == "processed-with-warnings"
    long = [i for i in result["issues"] if "256 characters" in i["diagnostics"]]
    assert {i["expression"] for i in long} == {
        "ServiceRequest.requisition.value",
        "Task.identifier[0].value",
    }
    for issue in long:
        assert issue["severity"] == "warning"  # the other row was imported
        assert issue["location"] == "row 2, column 转诊单号"
        assert issue["diagnostics"].startswith("row 2 not imported: ")
        assert "at most 255 are kept (referral_ledger.slip_number)" in issue["diagnostics"]
        assert slip not in issue["diagnostics"]
    # the other slip is stored, and is in the ledger
    assert set(_ledger(session_factory)) == {"LH-ZZ-2026-0402"}


def test_a_slip_number_at_the_limit_is_stored_whole(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    slip = "LH-ZZ-" + "9" * 249  # 255 characters
    answer = _post(client, "liuhe-his-csv", "text/csv", _csv(转诊单号=slip))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "processed"
    assert set(_ledger(session_factory)) == {slip, "LH-ZZ-2026-0402"}


def test_a_doctor_name_and_a_department_too_long_name_their_columns(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    doctor, department = "何" * 256, "骨" * 300
    answer = _post(client, "liuhe-his-csv", "text/csv", _csv(转诊医生=doctor, 转入科室=department))
    assert answer.status_code == 202, answer.text
    issues = {i["location"]: i for i in answer.json()["issues"] if "characters" in i["diagnostics"]}
    assert set(issues) == {"row 2, column 转诊医生", "row 2, column 转入科室"}
    assert issues["row 2, column 转诊医生"]["expression"] == "Practitioner.name[0]"
    assert "(referral_ledger.sender_doctor)" in issues["row 2, column 转诊医生"]["diagnostics"]
    assert (
        "the department in ServiceRequest.performer"
        in (issues["row 2, column 转入科室"]["diagnostics"])
    )
    for issue in issues.values():
        assert "何何何" not in issue["diagnostics"] and "骨骨骨" not in issue["diagnostics"]
    assert set(_ledger(session_factory)) == {"LH-ZZ-2026-0402"}


def test_a_long_patient_name_is_masked_to_its_column(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # the name itself is kept whole in the Patient; the ledger keeps only a mask, shortened
    answer = _post(client, "liuhe-his-csv", "text/csv", _csv(姓名="欧" + "阳" * 98 + "娜"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "processed"
    masked = _ledger(session_factory)["LH-ZZ-2026-0401"].patient_masked
    assert masked == "欧" + "*" * 62 + "娜"


def test_hl7v2_json_and_cda_slips_are_quarantined_at_the_field(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    long = "Ｘ" * 300
    cases = [
        (
            "std-hl7v2",
            "x-application/hl7-v2+er7",
            HL7_SLIP.read_text("utf-8").replace("李^建国", f"{long}^{long}"),
            {("PRD[1]-2[1].1", "Practitioner.name[0]")},
        ),
        (
            "liuhe-his-json",
            "application/json",
            JSON_SLIP.read_text("utf-8").replace('"内分泌科"', f'"{long}"'),
            {("$.referral.from.dept", "PractitionerRole.specialty[0].text")},
        ),
        (
            "std-cda",
            "application/xml",
            CDA_SLIP.read_text("utf-8").replace(
                'extension="SQ-ZZ-2026-0101"', f'extension="{long}"'
            ),
            {
                ("/ClinicalDocument/id[1]/@extension", "ServiceRequest.requisition.value"),
                ("/ClinicalDocument/id[1]/@extension", "Task.identifier[0].value"),
            },
        ),
    ]
    for source, content_type, text, expected in cases:
        raw = text.encode()
        answer = _post(client, source, content_type, raw)
        assert answer.status_code == 422, (source, answer.text)
        errors = _errors(answer.json())
        assert {(i["location"][0], i["expression"][0]) for i in errors} == expected, source
        assert all(long[:10] not in i["diagnostics"] for i in errors)
        message_id = answer.headers["X-Message-Id"]
        with session_factory() as session:
            message = session.get(InboundMessage, message_id)
            assert message is not None and message.status == "quarantined"
            assert message.raw == raw  # kept to be reprocessed
    assert _ledger(session_factory) == {}
