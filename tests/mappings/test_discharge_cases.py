"""Every discharge summary (出院小结) fixture, WS/T 500.53 CDA and 嘉禾 EMR XML: translated
without errors, every resource (the document Bundle included) valid FHIR R4, the hand-written
facts hold, and the output equals its golden file field by field (unread-content issues
included)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.discharge_facts import check_case

KINDS = {"cda": FIXTURES / "cda" / "discharge", "xml": FIXTURES / "xml" / "discharge"}


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind, folder in KINDS.items():
        if (folder / "cases.yaml").exists():
            cases = yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8"))
            out.extend((kind, case) for case in cases)
    return out


CASES = _cases()


def _translate(
    translator: Translator, kind: str, case: dict[str, Any]
) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate((KINDS[kind] / case["file"]).read_bytes(), case["source"])
    return outcome.resources, [i.as_dict() for i in outcome.issues]


@pytest.mark.parametrize("kind", [k for k, f in KINDS.items() if (f / "cases.yaml").exists()])
def test_every_fixture_file_has_a_case(kind: str) -> None:
    folder = KINDS[kind]
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*.xml")}
    assert files == {c["file"] for k, c in CASES if k == kind}
    assert len(files) >= 5


@pytest.mark.parametrize(("kind", "case"), CASES, ids=[f"{k}/{c['file']}" for k, c in CASES])
def test_discharge_case(translator: Translator, kind: str, case: dict[str, Any]) -> None:
    resources, issues = _translate(translator, kind, case)
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = KINDS[kind] / (case["file"].removesuffix(".xml") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def test_a_new_version_keeps_the_ids_of_the_one_it_replaces(translator: Translator) -> None:
    """RPLC: the corrected summary updates the same Composition, Bundle and stay (ids from
    setId / 住院号); the Bundle's identifier is the new document's."""
    first, _ = _translate(translator, "cda", {"file": "std-cda/basic.xml", "source": "std-cda"})
    second, _ = _translate(
        translator, "cda", {"file": "std-cda/corrected-rplc.xml", "source": "std-cda"}
    )
    ids = {(r["resourceType"], r["id"]) for r in first}
    assert ids == {(r["resourceType"], r["id"]) for r in second}
    bundles = [r for r in first + second if r["resourceType"] == "Bundle"]
    assert bundles[0]["id"] == bundles[1]["id"]
    assert bundles[0]["identifier"] != bundles[1]["identifier"]


def test_a_summary_of_another_document_kind_is_not_taken(translator: Translator) -> None:
    """match: only templateId 2.16.156.10011.2.1.1.73 is a discharge summary."""
    raw = (
        (KINDS["cda"] / "std-cda" / "basic.xml")
        .read_bytes()
        .replace(b"2.16.156.10011.2.1.1.73", b"2.16.156.10011.2.1.1.99")
    )
    outcome = translator.translate(raw, "std-cda")
    assert not outcome.resources
    assert [i.code for i in outcome.issues if i.severity == "error"] == ["not-supported"]


@pytest.mark.parametrize(
    ("kind", "file", "source", "cut"),
    [
        (
            "cda",
            "std-cda/basic.xml",
            "std-cda",
            b'<id root="2.16.156.10011.1.12" extension="ZY2611020015"/>',
        ),
        (
            "xml",
            "county-emr/basic.xml",
            "county-emr",
            b"<\xe4\xbd\x8f\xe9\x99\xa2\xe5\x8f\xb7>"
            b"ZY2611060021</\xe4\xbd\x8f\xe9\x99\xa2\xe5\x8f\xb7>",
        ),
    ],
)
def test_a_summary_without_inpatient_number_is_refused(
    translator: Translator, kind: str, file: str, source: str, cut: bytes
) -> None:
    """Without the 住院号 the stay, its diagnoses and medications cannot be identified: an
    error that names it (the document is quarantined, never half stored)."""
    raw = (KINDS[kind] / file).read_bytes()
    assert cut in raw
    outcome = translator.translate(raw.replace(cut, b""), source)
    assert outcome.failed
    assert any("住院号" in i.diagnostics for i in outcome.issues if i.severity == "error")


def test_a_tcm_syndrome_written_with_the_diseases_code_stays_its_own_condition(
    translator: Translator,
) -> None:
    """In the discharge summary too: the syndrome given the disease's GB/T 15657 code is a
    Condition of its own, listed under 出院诊断 and on the Encounter (role DD) beside the
    disease; and the stay's TCM disease has the id the WS/T 500 documents give it."""
    raw = (KINDS["cda"] / "std-cda/tcm-nested-diagnoses.xml").read_bytes()
    same = raw.replace(b'code="ZYVSR0"', b'code="BNP060"')
    assert same != raw
    outcome = translator.translate(same, "std-cda")
    assert not [i for i in outcome.issues if i.severity in ("error", "fatal")]
    tcm = [
        r
        for r in outcome.resources
        if r["resourceType"] == "Condition" and r["code"]["coding"][0]["code"] == "BNP060"
    ]
    assert len(tcm) == 2 and tcm[0]["id"] != tcm[1]["id"]
    assert sorted(c["code"]["text"] for c in tcm) == ["湿热蕴结证", "肠痈病"]
    refs = {f"Condition/{c['id']}" for c in tcm}
    (encounter,) = [r for r in outcome.resources if r["resourceType"] == "Encounter"]
    discharge = {
        d["condition"]["reference"]
        for d in encounter["diagnosis"]
        if d["use"]["coding"][0]["code"] == "DD"
    }
    assert refs <= discharge
    (composition,) = [r for r in outcome.resources if r["resourceType"] == "Composition"]
    (section,) = [s for s in composition["section"] if s["code"]["coding"][0]["code"] == "11535-2"]
    assert refs <= {e["reference"] for e in section["entry"]}
    # the disease keeps its id (the syndrome's own code changes nothing for it)
    plain = translator.translate(raw, "std-cda").resources
    assert refs & {f"Condition/{r['id']}" for r in plain if r["resourceType"] == "Condition"}


def test_the_stays_tcm_disease_is_one_condition_in_the_admission_record_and_the_summary(
    translator: Translator,
) -> None:
    """The 入院记录 (WS/T 500 document mapping) and the 出院小结 of one stay (same 住院号) give
    the same Chinese-medicine disease the same Condition id."""
    admission = (
        (FIXTURES / "cda" / "documents" / "std-cda" / "admission-record-gb18030.xml")
        .read_bytes()
        .replace(b"ZY20261125031", b"ZY20261127061")
        .replace(b"BNF090", b"BNP060")
    )
    summary = (KINDS["cda"] / "std-cda/tcm-nested-diagnoses.xml").read_bytes()

    def tcm_ids(raw: bytes) -> set[str]:
        return {
            r["id"]
            for r in translator.translate(raw, "std-cda").resources
            if r["resourceType"] == "Condition" and r["code"]["coding"][0]["code"] == "BNP060"
        }

    assert len(tcm_ids(admission)) == 1
    assert tcm_ids(admission) <= tcm_ids(summary)
