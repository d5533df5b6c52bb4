"""Every lab and exam report fixture (WS/T 500.7 / 500.6 CDA, 慧康 LIS and 睿影 PACS XML):
translated without error, valid FHIR R4, the hand-written facts hold, and the output equals
its golden file field by field. Plus: a lab report sent as HL7 v2 and as CDA is one
DiagnosticReport (the same ids), through the translator and through the stored pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline, Translator
from adapter.pipeline.receipt import Receipt
from adapter.store import read_resource
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES, ROOT
from tests.mappings.report_facts import check_exam, check_report_case

KINDS = [
    FIXTURES / "cda" / "lab",
    FIXTURES / "cda" / "exam",
    FIXTURES / "xml" / "lab",
    FIXTURES / "xml" / "exam",
]


def _cases() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for folder in KINDS:
        cases = yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8")) or []
        out.extend((folder, case) for case in cases)
    return out


CASES = _cases()
IDS = [f"{folder.parent.name}/{folder.name}/{case['file']}" for folder, case in CASES]


def translate(
    translator: Translator, folder: Path, case: dict[str, Any]
) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate((folder / case["file"]).read_bytes(), case["source"])
    return outcome.resources, [i.as_dict() for i in outcome.issues]


@pytest.mark.parametrize("folder", KINDS, ids=[f"{k.parent.name}/{k.name}" for k in KINDS])
def test_every_fixture_file_has_a_case(folder: Path) -> None:
    cases = yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8")) or []
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*.xml")}
    assert files == {c["file"] for c in cases}
    assert len(cases) >= 5


@pytest.mark.parametrize(("folder", "case"), CASES, ids=IDS)
def test_report_case(translator: Translator, folder: Path, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, folder, case)
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_report_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = folder / (case["file"].removesuffix(".xml") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


# -- the same lab report as HL7 v2 ORU^R01 and as WS/T 500.7 CDA -----------------------------

ORU = FIXTURES / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"
CDA = FIXTURES / "cda" / "lab" / "std-cda" / "cbc-same-as-oru.xml"


def _ids(resources: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in resources:
        out.setdefault(r["resourceType"], set()).add(r["id"])
    return out


SAME_REPORT = [
    # (HL7 v2 file, its source, the same report as a document, its source, results)
    (ORU, "std-hl7v2", CDA, "std-cda", 4),
    (
        FIXTURES / "hl7v2" / "oru" / "county-lis" / "cbc-gb18030.hl7",
        "county-lis",
        FIXTURES / "xml" / "lab" / "county-lis-xml" / "cbc-same-as-hl7.xml",
        "county-lis-xml",
        6,
    ),
]


@pytest.mark.parametrize(
    ("v2", "v2_source", "doc", "doc_source", "results"),
    SAME_REPORT,
    ids=["national-cda", "huikang-xml"],
)
def test_same_report_as_hl7v2_and_document_has_the_same_ids(
    translator: Translator, v2: Path, v2_source: str, doc: Path, doc_source: str, results: int
) -> None:
    oru = translator.translate(v2.read_bytes(), v2_source)
    other = translator.translate(doc.read_bytes(), doc_source)
    assert not [i for i in [*oru.issues, *other.issues] if i.severity in ("error", "fatal")]
    oru_ids, doc_ids = _ids(oru.resources), _ids(other.resources)
    for rtype in ("DiagnosticReport", "Observation", "Patient", "Specimen", "Organization"):
        assert doc_ids[rtype] == oru_ids[rtype], rtype
    assert len(doc_ids["Observation"]) == results


def test_a_different_report_number_is_a_different_report(translator: Translator) -> None:
    oru = translator.translate(ORU.read_bytes(), "std-hl7v2")
    other = CDA.read_bytes().replace(b'extension="L2611200015"', b'extension="L2611200016"')
    cda = translator.translate(other, "std-cda")
    cda_ids, oru_ids = _ids(cda.resources), _ids(oru.resources)
    assert cda_ids["DiagnosticReport"].isdisjoint(oru_ids["DiagnosticReport"])
    assert cda_ids["Patient"] == oru_ids["Patient"]


def test_cda_after_hl7v2_updates_the_stored_report(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    consortium = load_consortium(FIXTURES / "consortium.yaml")
    pipeline = Pipeline(
        consortium,
        session_factory,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    first = pipeline.ingest(ORU.read_bytes(), Receipt("std-hl7v2", "cli"))
    second = pipeline.ingest(CDA.read_bytes(), Receipt("std-cda", "cli"))
    assert first.status.startswith("processed") and second.status.startswith("processed")
    reports = [r for r in first.resources if r.startswith("DiagnosticReport/")]
    assert reports == [r for r in second.resources if r.startswith("DiagnosticReport/")]
    _, report_id = reports[0].split("/")
    with session_factory() as session:
        stored = read_resource(session, "DiagnosticReport", report_id)
    assert stored is not None
    # the CDA version is the current one: it carries the document's conclusion
    assert stored["meta"]["versionId"] == "2"
    assert stored["conclusion"] == "白细胞计数升高，血小板计数减低"


# -- the facts checker itself: a merged report must fail ----------------------------------------


def test_the_exam_facts_catch_findings_merged_into_the_conclusion(translator: Translator) -> None:
    path = FIXTURES / "cda" / "exam" / "std-cda" / "us-abdomen.xml"
    resources = translator.translate(path.read_bytes(), "std-cda").resources
    report = next(r for r in resources if r["resourceType"] == "DiagnosticReport")
    findings = next(r for r in resources if r["resourceType"] == "Observation")
    facts = {"findings": findings["valueString"], "impression": report["conclusion"]}
    assert check_exam(resources, facts, report) == []
    merged = {**report, "conclusion": findings["valueString"] + report["conclusion"]}
    assert any("merged" in p for p in check_exam(resources, facts, merged))
    findings["valueString"] += report["conclusion"]
    assert any("merged" in p for p in check_exam(resources, facts, report))


# -- documents that must not pass ----------------------------------------------------------------


def _errors(translator: Translator, raw: bytes, source: str) -> list[dict[str, Any]]:
    issues = [i.as_dict() for i in translator.translate(raw, source).issues]
    return [i for i in issues if i["severity"] in ("error", "fatal")]


def test_a_lab_document_without_report_number_is_refused(translator: Translator) -> None:
    raw = CDA.read_bytes().replace(b'root="2.16.156.10011.1.33"', b'root="2.16.156.10011.1.99"')
    errors = _errors(translator, raw, "std-cda")
    assert any(
        "检验报告单号" in e["diagnostics"] and "patientRole" in e.get("location", "")
        for e in errors
    ), errors


def test_an_unknown_cda_item_status_is_refused(translator: Translator) -> None:
    path = FIXTURES / "cda" / "lab" / "std-cda" / "no-national-id-traditional.xml"
    raw = path.read_bytes().replace(b'<statusCode code="aborted"/>', b'<statusCode code="held"/>')
    errors = _errors(translator, raw, "std-cda")
    assert any(
        "'held'" in e["diagnostics"] and "statusCode" in e.get("location", "") for e in errors
    ), errors


def test_a_cda_of_another_template_is_not_taken_for_a_report(translator: Translator) -> None:
    raw = CDA.read_bytes().replace(b"2.16.156.10011.2.1.1.27", b"2.16.156.10011.2.1.1.99")
    errors = _errors(translator, raw, "std-cda")
    assert [e["code"] for e in errors] == ["not-supported"], errors


def test_an_unknown_vendor_report_state_is_refused(translator: Translator) -> None:
    path = FIXTURES / "xml" / "exam" / "county-pacs" / "us-thyroid.xml"
    raw = path.read_bytes().replace(
        "<报告状态>已审核</报告状态>".encode(), "<报告状态>待定</报告状态>".encode()
    )
    errors = _errors(translator, raw, "county-pacs")
    where = "/检查报告单/报告[1]/报告状态[1]"
    assert any("'待定'" in e["diagnostics"] and e.get("location") == where for e in errors), errors


def test_an_exam_report_never_puts_findings_in_the_conclusion(translator: Translator) -> None:
    """Without an impression the report has no conclusion; the findings stay an Observation."""
    path = FIXTURES / "cda" / "exam" / "std-cda" / "us-abdomen.xml"
    text = path.read_bytes().decode("utf-8")
    start = text.index('<code code="DE04.50.132.00"')
    cut = text.rindex("<entry>", 0, start), text.index("</entry>", start) + len("</entry>")
    outcome = translator.translate((text[: cut[0]] + text[cut[1] :]).encode(), "std-cda")
    report = next(r for r in outcome.resources if r["resourceType"] == "DiagnosticReport")
    findings = [r for r in outcome.resources if r["resourceType"] == "Observation"]
    assert "conclusion" not in report
    assert len(findings) == 1 and findings[0]["valueString"].startswith("肝脏大小形态正常")
