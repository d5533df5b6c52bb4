"""HL7 v3 interaction messages of the national 互联互通 standard: the patient registry
(PRPA_IN201311UV02, PRPA_IN201314UV02, PRPA_IN201304UV02) and the document registration that
publishes lab and exam reports (RCMR_IN000002UV02 carrying the CDA document): translated
without errors, valid FHIR R4, the hand-written facts hold, the output equals its golden file,
and each gives the same FHIR as the same content in another format (the HL7 v2 ADT message of
the same person; the CDA document the registration carries)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.oru_facts import check_patient, check_report

FOLDER = FIXTURES / "xml" / "hl7v3"
CASES: list[dict[str, Any]] = yaml.safe_load((FOLDER / "cases.yaml").read_text(encoding="utf-8"))
ETHNIC = "https://yigongti-fhir-adapter.github.io/fhir/StructureDefinition/ethnic-group"


def _patients(resources: list[dict]) -> list[dict]:
    return [r for r in resources if r["resourceType"] == "Patient"]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(FOLDER).as_posix() for p in FOLDER.rglob("*.xml")}
    assert files == {c["file"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_hl7v3_case(translator: Translator, case: dict[str, Any]) -> None:
    outcome = translator.translate((FOLDER / case["file"]).read_bytes(), "std-cda")
    resources, issues = outcome.resources, [i.as_dict() for i in outcome.issues]
    expect = case["expect"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues
    problems: list[str] = []
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
        problems.extend(f"{r['resourceType']}/{r['id']}: {p}" for p in validate_r4(r))
    if counts != expect["counts"]:
        problems.append(f"counts {counts} != {expect['counts']}")
    if expect.get("no_unread"):
        problems.extend(i["location"] for i in issues if "not read" in i["diagnostics"])
    if "report" in expect:
        reports = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
        problems.extend(check_report(reports[0], expect["report"], "DiagnosticReport"))
        categories = [c["code"] for cat in reports[0]["category"] for c in cat.get("coding", [])]
        if not set(expect["report"].get("category", [])) <= set(categories):
            problems.append(f"report category {categories}")
    if "same_resources_as" in expect:
        document = (FIXTURES / expect["same_resources_as"]).read_bytes()
        alone = translator.translate(document, "std-cda").resources
        if resources != alone:
            problems.append(f"the resources differ from those of {expect['same_resources_as']}")
    survivor = next(p for p in _patients(resources) if p["active"])
    problems.extend(check_patient(survivor, expect["patient"], "Patient"))
    if "ethnic_group" in expect:
        codes = [
            c["code"]
            for e in survivor.get("extension", [])
            if e["url"] == ETHNIC
            for c in e["valueCodeableConcept"].get("coding", [])
        ]
        if codes != [expect["ethnic_group"]]:
            problems.append(f"ethnic group {codes}")
    if "marital" in expect:
        codes = [c["code"] for c in survivor["maritalStatus"]["coding"]]
        if codes != [expect["marital"]]:
            problems.append(f"marital status {codes}")
    if "contact" in expect:
        contact = survivor["contact"][0]
        got = [contact["relationship"][0]["coding"][0]["code"], contact["name"]["text"]]
        if got != expect["contact"]:
            problems.append(f"contact {got}")
    if "merged" in expect:
        merged = next(p for p in _patients(resources) if not p["active"])
        values = [i["value"] for i in merged["identifier"]]
        if expect["merged"]["identifier"] not in values:
            problems.append(f"merged identifiers {values}")
        to_survivor = {"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}
        to_merged = {"other": {"reference": f"Patient/{merged['id']}"}, "type": "replaces"}
        if merged["link"] != [to_survivor]:
            problems.append(f"merged link {merged['link']}")
        if survivor["link"] != [to_merged]:
            problems.append(f"survivor link {survivor.get('link')}")
    if "coverage" in expect:
        problems.extend(_check_coverage(resources, survivor, expect["coverage"]))
    if "same_patient_as" in expect:
        raw = (FIXTURES / "hl7v2" / "adt" / expect["same_patient_as"]).read_bytes()
        v2 = translator.translate(raw, "county-his").resources
        if {p["id"] for p in _patients(v2)} != {p["id"] for p in _patients(resources)}:
            problems.append(f"Patient ids differ from {expect['same_patient_as']}")
    golden = FOLDER / (case["file"].removesuffix(".xml") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def test_a_registration_without_any_identifier_is_refused(translator: Translator) -> None:
    raw = (FOLDER / "std-cda" / "register-no-id-card.xml").read_bytes()
    raw = raw.replace(b'extension="MZ0000599871"', b'extension=""')
    outcome = translator.translate(raw, "std-cda")
    errors = [i for i in outcome.issues if i.severity == "error"]
    assert errors and "no patient identifier" in errors[0].diagnostics
    assert errors[0].location == "/PRPA_IN201311UV02/controlActProcess[1]"


def test_a_merge_of_a_record_into_itself_is_refused(translator: Translator) -> None:
    raw = (FOLDER / "std-cda" / "merge.xml").read_bytes()
    prior = b'<priorRegisteredRole classCode="PAT">\n                <id><item root='
    raw = raw.replace(  # the survivor's own number at this facility (its record's key)
        prior + b'"2.16.156.10011.2.5.1.4" extension="MZ0000599871"/>',
        prior + b'"2.16.156.10011.2.5.1.4" extension="MZ0000500120"/>',
    )
    outcome = translator.translate(raw, "std-cda")
    assert any("nothing to merge" in i.diagnostics for i in outcome.issues if i.severity == "error")


def _register_with(payload: bytes) -> bytes:
    raw = (FOLDER / "std-cda" / "lab-report-register.xml").read_bytes()
    start = raw.index(b'<originalText value="') + len(b'<originalText value="')
    return raw[:start] + payload + raw[raw.index(b'"', start) :]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "carries no document"),
        (b"not*base64!", "not base64"),
        (base64.b64encode(b"<ClinicalDocument"), ""),  # not well-formed XML
    ],
)
def test_a_registration_whose_document_cannot_be_read_is_refused(
    translator: Translator, payload: bytes, message: str
) -> None:
    outcome = translator.translate(_register_with(payload), "std-cda")
    errors = [i for i in outcome.issues if i.severity in ("error", "fatal")]
    assert errors and not outcome.resources
    assert message in errors[0].diagnostics
    assert errors[0].location.startswith(
        "/RCMR_IN000002UV02/controlActProcess[1]/subject[1]/clinicalDocument[1]/storageCode[1]"
    )


def test_a_carried_documents_problems_are_located_inside_the_registration(
    translator: Translator,
) -> None:
    """A warning of the carried CDA document (a 检验报告 whose data element no rule reads)
    names where in that document, after the registration's path to it."""
    document = (FIXTURES / "cda" / "lab" / "std-cda" / "cbc-same-as-oru.xml").read_bytes()
    document = document.replace(
        b"</recordTarget>", b"<unknownVendorNote>x</unknownVendorNote></recordTarget>", 1
    )
    outcome = translator.translate(_register_with(base64.b64encode(document)), "std-cda")
    unread = [i for i in outcome.issues if "not read" in i.diagnostics]
    assert unread and all("/@value#/ClinicalDocument/" in (i.location or "") for i in unread)


def _check_coverage(
    resources: list[dict[str, Any]], patient: dict[str, Any], facts: dict[str, Any]
) -> list[str]:
    coverages = [r for r in resources if r["resourceType"] == "Coverage"]
    if len(coverages) != 1:
        return [f"{len(coverages)} Coverages"]
    coverage = coverages[0]
    coding = coverage["type"]["coding"][0]
    out = []
    got = {"code": coding["code"], "system": coding["system"], "name": coverage["type"]["text"]}
    for key, value in got.items():
        if key in facts and facts[key] != value:
            out.append(f"Coverage {key} {value!r} != {facts[key]!r}")
    if coverage["beneficiary"] != {"reference": f"Patient/{patient['id']}"}:
        out.append(f"Coverage beneficiary {coverage['beneficiary']}")
    payor = coverage["payor"][0]
    self_pay = payor == {"reference": f"Patient/{patient['id']}"}
    if facts.get("self_pay", False) != self_pay:
        out.append(f"Coverage payor {payor}")
    return out


def test_the_insurance_type_in_the_plain_form_and_self_pay(translator: Translator) -> None:
    """coveredPartyOf with the displayName as an attribute (the standard's own samples) and
    the two-digit code of 全自费: the same Coverage id, the patient as payor."""
    raw = (FOLDER / "std-cda" / "register-insurance.xml").read_bytes()
    plain = raw.replace(
        'code="3" codeSystem="2.16.156.10011.2.3.1.248" codeSystemName="医疗保险类别代码">'
        '<displayName value="新型农村合作医疗"/></code>'.encode(),
        'code="07" codeSystem="2.16.156.10011.2.3.1.248" displayName="全自费"/>'.encode(),
    )
    assert plain != raw
    first = translator.translate(raw, "std-cda")
    outcome = translator.translate(plain, "std-cda")
    assert not [i for i in outcome.issues if "not read" in i.diagnostics]
    (patient,) = _patients(outcome.resources)
    assert (
        _check_coverage(
            outcome.resources, patient, {"code": "07", "name": "全自费", "self_pay": True}
        )
        == []
    )
    ids = {r["id"] for r in outcome.resources if r["resourceType"] == "Coverage"}
    assert ids == {r["id"] for r in first.resources if r["resourceType"] == "Coverage"}


def test_no_coverage_without_an_insurance_type(translator: Translator) -> None:
    outcome = translator.translate(
        (FOLDER / "std-cda" / "register-no-id-card.xml").read_bytes(), "std-cda"
    )
    assert not [r for r in outcome.resources if r["resourceType"] == "Coverage"]
