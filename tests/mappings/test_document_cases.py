"""Every WS/T 500 shared document fixture of fixtures/cda/documents (the documents of the
generic mapping, mappings/_shared/xml/messages/wst500-document.yaml): translated without
errors, every resource valid FHIR R4 (invariants included), the hand-written facts hold, the
output equals its golden file; plus the same stay sent as 入院记录 and 出院记录 is one
Encounter and one Condition per diagnosis."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.mapping.formats import FORMATS
from adapter.mapping.loader import load_mapping_set
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES, ROOT
from tests.mappings.document_facts import check_document_case
from tests.unit.mapping_support import context, write

FOLDER = FIXTURES / "cda" / "documents"
CASES: list[dict[str, Any]] = yaml.safe_load((FOLDER / "cases.yaml").read_text(encoding="utf-8"))


def _translate(translator: Translator, file: str) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate((FOLDER / file).read_bytes(), "std-cda")
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(FOLDER).as_posix() for p in FOLDER.rglob("*.xml")}
    assert files == {c["file"] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_document_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = _translate(translator, case["file"])
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_document_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = FOLDER / (case["file"].removesuffix(".xml") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def test_admission_and_discharge_records_of_one_stay_share_encounter_and_diagnoses(
    translator: Translator,
) -> None:
    admission, _ = _translate(translator, "std-cda/admission-record-gb18030.xml")
    discharge, _ = _translate(translator, "std-cda/discharge-record.xml")

    def ids(resources: list[dict], rtype: str) -> set[str]:
        return {r["id"] for r in resources if r["resourceType"] == rtype}

    assert ids(admission, "Encounter") == ids(discharge, "Encounter")
    assert ids(discharge, "Condition") <= ids(admission, "Condition")
    assert ids(admission, "Composition").isdisjoint(ids(discharge, "Composition"))


def test_a_data_element_value_is_never_left_unread(translator: Translator) -> None:
    """Decision 0016: a data element's value the mapping does not carry is a warning; here a
    section whose <text/> is empty carries every value into its narrative instead. (What
    stays unread is information only: a section code's displayName beside its title; a data
    element's code is carried on its section, decision 0038.)"""
    raw = (FOLDER / "std-cda" / "discharge-record.xml").read_bytes()
    outcome = translator.translate(raw, "std-cda")
    composition = next(r for r in outcome.resources if r["resourceType"] == "Composition")
    course = next(s for s in composition["section"] if s["code"]["coding"][0]["code"] == "8648-8")
    assert "诊疗过程描述：入院后予抗感染" in course["text"]["div"]
    unread = [i for i in outcome.issues if "not read" in i.diagnostics]
    assert unread and not [i for i in unread if i.severity != "information"]
    assert not [i for i in unread if "/value" in (i.location or "")]
    assert not [i for i in unread if (i.location or "").endswith("/code[1]/@code")]
    # the narrative-only 诊疗过程描述 keeps its data-element code where a reader sees it
    codes = [e["valueCoding"]["code"] for e in course.get("extension", [])]
    assert "DE06.00.296.00" in codes


@pytest.mark.parametrize(
    ("template", "code", "intent"),
    [("72", "C0052", "order"), ("24", "C0004", "order"), ("54", "C0034", "plan")],
)
def test_a_drug_of_the_inpatient_orders_is_an_order_as_in_a_prescription(
    translator: Translator, template: str, code: str, intent: str
) -> None:
    """wst500-medication's intent rule (data): a substanceAdministration in a 住院医嘱 is a
    physician's order, as in a 处方; in a record (入院记录) it is a plan."""
    raw = (FOLDER / "std-cda" / "prescription-child.xml").read_bytes()
    raw = raw.replace(
        b'root="2.16.156.10011.2.1.1.24"', f'root="2.16.156.10011.2.1.1.{template}"'.encode()
    )
    raw = raw.replace(b'code="C0004"', f'code="{code}"'.encode())
    outcome = translator.translate(raw, "std-cda")
    medications = [r for r in outcome.resources if r["resourceType"] == "MedicationRequest"]
    assert medications and {m["intent"] for m in medications} == {intent}


def test_a_tcm_syndrome_with_the_code_of_the_disease_is_its_own_condition(
    translator: Translator,
) -> None:
    """中医病名 and 中医证候 share one data element (DE05.10.130.00) and one code table
    (GB/T 15657): written with the same code, they stay two Conditions (ids, categories), and
    the Composition and the Encounter reference both."""
    raw = (FOLDER / "std-cda/outpatient-tcm.xml").read_bytes()
    same = raw.replace(b'code="ZBWFR1"', b'code="BNW010"')
    assert same != raw
    outcome = translator.translate(same, "std-cda")
    assert not [i for i in outcome.issues if i.severity in ("error", "fatal")]
    conditions = [r for r in outcome.resources if r["resourceType"] == "Condition"]
    tcm = [c for c in conditions if c["code"]["coding"][0]["code"] == "BNW010"]
    assert len(tcm) == 2 and tcm[0]["id"] != tcm[1]["id"]
    kinds = sorted(
        coding["code"]
        for c in tcm
        for category in c["category"]
        for coding in category["coding"]
        if coding["code"].startswith("tcm-")
    )
    assert kinds == ["tcm-disease", "tcm-syndrome"]
    assert sorted(c["code"]["text"] for c in tcm) == ["感冒病", "风热犯表证"]
    ids = {f"Condition/{c['id']}" for c in conditions}
    (composition,) = [r for r in outcome.resources if r["resourceType"] == "Composition"]
    (section,) = [s for s in composition["section"] if s["title"] == "诊断记录"]
    assert {e["reference"] for e in section["entry"]} == ids
    (encounter,) = [r for r in outcome.resources if r["resourceType"] == "Encounter"]
    assert {d["condition"]["reference"] for d in encounter["diagnosis"]} == ids
    # the disease keeps the id it has when the syndrome has its own code
    plain = translator.translate(raw, "std-cda").resources
    disease = next(c for c in tcm if "tcm-disease" in str(c["category"]))
    assert disease["id"] in {r["id"] for r in plain}


def test_a_visit_under_the_vendors_oid_in_the_patient_role_needs_its_dialect(
    tmp_path: Path,
) -> None:
    """A source that writes its visit number as a patientRole/id under its own OID (not in
    encompassingEncounter) replaces xml/datatypes/cda-vendor-visit.yaml in its dialect: the
    shared rules make no Encounter from it (the id is reported unread), the dialect's do,
    with the id under that OID as identifier, and the diagnoses keyed by the visit."""
    raw = (FOLDER / "std-cda/outpatient-vendor-visit.xml").read_bytes()
    moved = raw.replace(
        b'      <id root="1.2.156.112635.1.2.1.4" extension="V261204-0057"/>\n', b""
    ).replace(
        b'<id root="1.2.156.112635.1.2.1.2" extension="P0061423"/>',
        b'<id root="1.2.156.112635.1.2.1.2" extension="P0061423"/>\n'
        b'      <id root="1.2.156.112635.1.2.1.4" extension="V261204-0057"/>',
    )
    assert moved.count(b"V261204-0057") == 1 and b"encompassingEncounter" in moved
    root = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings" / "_shared", root / "_shared")
    oid = "1.2.156.112635.1.2.1.4"
    found = f"cda:recordTarget/cda:patientRole/cda:id[@root='{oid}']/@extension"
    body = f"when(eq(@part, 'root'), '{oid}'), when(eq(@part, 'extension'), @found)"
    write(
        root,
        {
            "vendor-emr/xml/datatypes/cda-vendor-visit.yaml": f"""\
                version: 1
                kind: datatype
                description: the vendor EMR writes its visit number as a patientRole/id
                params: [part]
                let:
                  found: "={found}"
                body: "=when(exists(@found), first({body}))"
            """
        },
    )
    xml = FORMATS["xml"]

    def translated(folder: str, data: bytes = moved) -> dict[str, list[dict[str, Any]]]:
        document = xml.parse(data).document
        outcome = xml.translate(load_mapping_set(root, folder), document, context())
        assert not [i for i in outcome.issues if i.severity in ("error", "fatal")]
        out: dict[str, list[dict[str, Any]]] = {}
        for r in outcome.resources:
            out.setdefault(r["resourceType"], []).append(r)
        return out

    assert "Encounter" not in translated("_shared")
    dialect = translated("vendor-emr")
    (encounter,) = dialect["Encounter"]
    # the same visit written in encompassingEncounter (shared rules): the same ids
    shared = translated("_shared", raw)
    assert encounter["id"] == shared["Encounter"][0]["id"]
    assert [c["id"] for c in dialect["Condition"]] == [c["id"] for c in shared["Condition"]]
    assert encounter["identifier"] == [
        {"type": {"text": "就诊标识"}, "system": f"urn:oid:{oid}", "value": "V261204-0057"}
    ]
