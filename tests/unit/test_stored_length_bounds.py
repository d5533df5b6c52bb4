"""The stored-length check (adapter/pipeline/stored_lengths.py) and where each format finds
a refused value in its input (``SourceFormat.locate_value``)."""

from __future__ import annotations

from typing import Any

from adapter.mapping.formats import BY_SOURCE_FORMAT
from adapter.mapping.formats.base import best_place
from adapter.pipeline.checks import check_resources
from adapter.pipeline.stored_lengths import BOUNDS, too_long
from adapter.referral.ledger import mask_name
from adapter.referral.rules import BUSINESS_SYSTEM, REASON_SYSTEM
from adapter.store.models import ReferralLedger

COLUMNS = ReferralLedger.__table__.c


def test_the_limits_are_the_ledger_columns() -> None:
    assert {b.name: b.limit for bounds in BOUNDS.values() for b in bounds} == {
        "referral_ledger.slip_number": COLUMNS.slip_number.type.length,
        "referral_ledger.receiver_department": COLUMNS.receiver_department.type.length,
        "referral_ledger.status": COLUMNS.status.type.length,
        "referral_ledger.business_status": COLUMNS.business_status.type.length,
        "referral_ledger.rejection_reason": COLUMNS.rejection_reason.type.length,
        "referral_ledger.sender_department": COLUMNS.sender_department.type.length,
        "referral_ledger.sender_doctor": COLUMNS.sender_doctor.type.length,
        "referral_ledger.sex": COLUMNS.sex.type.length,
    }
    # one bound stands for the sender's and the receiver's columns alike
    assert COLUMNS.sender_department.type.length == COLUMNS.receiver_department.type.length
    assert COLUMNS.sender_doctor.type.length == COLUMNS.receiver_doctor.type.length


def _found(resource: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(f.expression, f.length, f.limit) for f in too_long(resource)]


def test_each_bound_reads_its_element_and_allows_the_limit() -> None:
    assert _found({"resourceType": "ServiceRequest", "requisition": {"value": "x" * 255}}) == []
    assert _found({"resourceType": "ServiceRequest", "requisition": {"value": "x" * 256}}) == [
        ("ServiceRequest.requisition.value", 256, 255)
    ]
    # the department is the part after the last space of the performer's display
    assert (
        _found(
            {"resourceType": "ServiceRequest", "performer": [{"display": "县医院 " + "科" * 255}]}
        )
        == []
    )
    assert _found(
        {"resourceType": "ServiceRequest", "performer": [{}, {"display": "县医院 " + "科" * 256}]}
    ) == [("ServiceRequest.performer[1].display", 256, 255)]
    assert _found(
        {"resourceType": "Practitioner", "name": [{"family": "王" * 200, "given": ["芳" * 56]}]}
    ) == [("Practitioner.name[0]", 256, 255)]
    assert _found({"resourceType": "PractitionerRole", "specialty": [{"text": "科" * 256}]}) == [
        ("PractitionerRole.specialty[0].text", 256, 255)
    ]
    task = {
        "resourceType": "Task",
        "status": "s" * 33,
        "identifier": [{"value": "1"}, {"value": "2" * 256}],
        "businessStatus": {"coding": [{"system": "other", "code": "b" * 40}]},
        "statusReason": {"coding": [{"system": REASON_SYSTEM, "code": "r" * 65}]},
    }
    assert _found(task) == [
        ("Task.identifier[1].value", 256, 255),
        ("Task.status", 33, 32),
        ("Task.statusReason.coding[0].code", 65, 64),
    ]
    task["businessStatus"]["coding"].append({"system": BUSINESS_SYSTEM, "code": "b" * 33})
    assert ("Task.businessStatus.coding[1].code", 33, 32) in _found(task)
    # other resource types and other elements are not the ledger's
    assert _found({"resourceType": "Observation", "id": "x" * 300}) == []


def test_the_issue_names_element_column_and_lengths_never_the_value() -> None:
    name = "张" * 300
    practitioner = {"resourceType": "Practitioner", "id": "p1", "name": [{"text": name}]}
    [issue] = check_resources([practitioner], locate=lambda value: "PRD[1]-2[1].1")
    assert issue.severity == "error" and issue.code == "value"
    assert issue.location == "PRD[1]-2[1].1" and issue.expression == "Practitioner.name[0]"
    assert issue.diagnostics == (
        "Practitioner/p1: Practitioner.name[0] is 300 characters; "
        "at most 255 are kept (referral_ledger.sender_doctor)"
    )
    assert "张张" not in repr(too_long(practitioner))
    # not found in the input: located as the resource's origin
    origins = {("Practitioner", "p1"): "PRD[1]"}
    [issue] = check_resources([practitioner], origins, lambda value: None)
    assert issue.location == "PRD[1]"


def test_best_place_prefers_equal_then_containing_then_the_longest_contained() -> None:
    places = [("a", "李"), ("b", "李建国医生"), ("c", "建国"), ("d", "李建国")]
    assert best_place("李建国", places) == "d"
    assert best_place("建国医", places) == "b"
    assert best_place("王李建国", places[:1] + places[2:3]) == "c"
    assert best_place("无", places) is None
    assert best_place("  ", places) is None


def test_each_format_locates_a_value_in_its_document() -> None:
    hl7 = BY_SOURCE_FORMAT["hl7v2"]
    message = hl7.parse(
        b"MSH|^~\\&|A|B|C|D|20261120093000||REF^I12|1|P|2.5.1\r"
        b"PRD|RP|\\T\\Li^Jianguo||||||\rPRD|RT|||Cardiology^^^County&1\r"
    ).document
    assert hl7.locate_value(message, "&Li") == "PRD[1]-2[1].1"
    assert hl7.locate_value(message, "County") == "PRD[2]-4[1].4.1"
    xml = BY_SOURCE_FORMAT["cda"]
    root = xml.parse(
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id extension="SQ-1"/><id extension="A"/>'
        b"<title>Slip</title></ClinicalDocument>"
    ).document
    assert xml.locate_value(root, "A") == "/ClinicalDocument/id[2]/@extension"
    assert xml.locate_value(root, "Slip") == "/ClinicalDocument/title[1]/text()"
    js = BY_SOURCE_FORMAT["json"]
    data = js.parse(b'{"referral": {"no": "QS-1", "to": [{"dept": "ke shi"}]}}').document
    assert js.locate_value(data, "ke shi") == "$.referral.to[0].dept"
    assert js.locate_value(data, "nothing") is None
    table = (
        BY_SOURCE_FORMAT["csv"].parse("转诊单号,姓名\r\nA-1,王芳\r\nA-2,李\r\n".encode()).document
    )
    assert BY_SOURCE_FORMAT["csv"].locate_value(table, "A-2") == "row 3, column 转诊单号"


def test_a_long_name_is_masked_to_the_ledger_column() -> None:
    assert mask_name("欧阳娜娜") == "欧**娜"
    limit = COLUMNS.patient_masked.type.length
    assert mask_name("欧" + "阳" * 200 + "娜") == "欧" + "*" * (limit - 2) + "娜"
    assert len(mask_name("x" * (limit + 1)) or "") == limit
