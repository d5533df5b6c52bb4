"""Every OUL^R21 / R22 / R24 fixture: translated, valid FHIR R4, the hand-written facts hold,
the output equals its golden file, and a report sent as OUL gives exactly the resources the
same report sent as ORU^R01 gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.conftest import FIXTURES
from tests.mappings.oru_facts import check_case

OUL = FIXTURES / "hl7v2" / "oul"
ORU = FIXTURES / "hl7v2" / "oru"
CASES: list[dict[str, Any]] = yaml.safe_load((OUL / "cases.yaml").read_text(encoding="utf-8"))
IDS = [c["file"] for c in CASES]


def golden_path(case: dict[str, Any]) -> Path:
    return OUL / (case["file"].removesuffix(".hl7") + ".expected.json")


def translate(translator: Translator, path: Path, source: str) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate(path.read_bytes(), source)
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(OUL).as_posix() for p in OUL.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}
    kinds = {parse_hl7v2((OUL / c["file"]).read_bytes()).message_type() for c in CASES}
    assert kinds == {"OUL^R21", "OUL^R22", "OUL^R24"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_oul_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, OUL / case["file"], case["source"])
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_case(resources, issues, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    problems.extend(check_golden(golden_path(case), {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


@pytest.mark.parametrize("case", [c for c in CASES if "same_as" in c], ids=lambda c: c["file"])
def test_same_report_as_oru_gives_identical_resources(
    translator: Translator, case: dict[str, Any]
) -> None:
    oul, _ = translate(translator, OUL / case["file"], case["source"])
    oru, _ = translate(translator, ORU / case["same_as"], case["source"])

    def key(r: dict[str, Any]) -> tuple[str, str]:
        return r["resourceType"], r["id"]

    assert [key(r) for r in sorted(oul, key=key)] == [key(r) for r in sorted(oru, key=key)]
    assert sorted(oul, key=key) == sorted(oru, key=key)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_obx_is_accounted_for(translator: Translator, case: dict[str, Any]) -> None:
    """No silent drop: each OBX becomes an Observation or an issue names it."""
    message = parse_hl7v2((OUL / case["file"]).read_bytes())
    resources, issues = translate(translator, OUL / case["file"], case["source"])
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    named = {
        i.get("location", "").split("-")[0]
        for i in issues
        if "not made" in i["diagnostics"] or "not read" in i["diagnostics"]
    }
    obx = message.segments_named("OBX")
    unaccounted = (
        len(obx) - len(observations) - sum(1 for s in obx if f"OBX[{s.occurrence}]" in named)
    )
    assert unaccounted == 0, f"{case['file']}: {len(obx)} OBX, {len(observations)} Observations"


def test_orc_after_obr_in_r21_reads_with_the_shared_rules(translator: Translator) -> None:
    """The shared OUL^R21 reads the 信达 message, whose ORC follows its OBR, with a note at
    each ORC, to the resources its dialect gives: the same ids, the same content but the
    flags the dialect reads from OBX-10 (decision 0041)."""
    raw = (OUL / "county-lis-xinda" / "emergency-two-orders-gbk.hl7").read_bytes()
    shared = translator.translate(raw, "std-hl7v2")
    assert not [i for i in shared.issues if i.severity in ("error", "fatal")], shared.issues
    notes = {i.location: i.diagnostics for i in shared.issues if i.code == "structure"}
    assert set(notes) == {"ORC[1]", "ORC[2]"}
    assert "written after its OBR[1]" in notes["ORC[1]"]
    assert all(i.severity == "information" for i in shared.issues if i.code == "structure")
    dialect = translator.translate(raw, "county-lis-xinda")
    assert not [i for i in dialect.issues if i.severity in ("error", "fatal")]
    assert not [i for i in dialect.issues if i.code == "structure"]

    def without_flags(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = [
            {k: v for k, v in r.items() if k != "interpretation"}
            if r["resourceType"] == "Observation"
            else r
            for r in resources
        ]
        return sorted(out, key=lambda r: (r["resourceType"], r["id"]))

    assert without_flags(shared.resources) == without_flags(dialect.resources)
    assert len(shared.resources) == 10


def _orc_moved(raw: bytes, to: str) -> bytes:
    """The message with each ORC moved: ``to="before"`` just before the OBR it follows (the
    OUL^R21 / ORU^R01 standard order), ``to="end"`` after the last segment of its order."""
    lines = [line for line in raw.split(b"\r") if line]
    out: list[bytes] = []
    pending: bytes | None = None  # to="end": the ORC waiting for the end of its order
    seen_obr = False
    for line in lines:
        name = line[:3]
        if to == "before" and name == b"ORC":
            out.insert(max(i for i, kept in enumerate(out) if kept.startswith(b"OBR|")), line)
            continue
        if to == "end":
            ends = name in (b"ORC", b"PID") or (name == b"OBR" and seen_obr)
            if pending is not None and ends:
                out.append(pending)
                pending = None
            if name == b"ORC":
                pending, seen_obr = line, False
                continue
            seen_obr = seen_obr or name == b"OBR"
        out.append(line)
    if pending is not None:
        out.append(pending)
    return b"\r".join(out) + b"\r"


@pytest.mark.parametrize(
    "folder, file, to",
    [
        (OUL, "std-hl7v2/orc-after-results-r21.hl7", "before"),
        (OUL, "std-hl7v2/stool-r21.hl7", "end"),
        (OUL, "std-hl7v2/urine-r24.hl7", "end"),
        (ORU, "std-hl7v2/two-orders.hl7", "end"),
        (ORU, "std-hl7v2/cbc-basic.hl7", "end"),
    ],
)
def test_orc_after_its_results_gives_the_fhir_of_the_standard_order(
    translator: Translator, folder: Path, file: str, to: str
) -> None:
    """The same report with its ORC where the standard puts it and after the order's
    results: identical resources (same ids, same content); only the latter has notes."""
    raw = (folder / file).read_bytes()
    moved = _orc_moved(raw, to)
    assert moved != raw
    standard, late = (moved, raw) if to == "before" else (raw, moved)
    a = translator.translate(standard, "std-hl7v2")
    b = translator.translate(late, "std-hl7v2")
    for outcome in (a, b):
        assert not [i for i in outcome.issues if i.severity in ("error", "fatal")], outcome.issues
    assert not [i for i in a.issues if i.code == "structure"]
    orcs = late.count(b"\rORC|")
    assert [i.location for i in b.issues if i.code == "structure"] == [
        f"ORC[{n}]" for n in range(1, orcs + 1)
    ]

    def key(r: dict[str, Any]) -> tuple[str, str]:
        return r["resourceType"], r["id"]

    assert sorted(a.resources, key=key) == sorted(b.resources, key=key)
    unread_a = {i.location for i in a.issues if "not read" in i.diagnostics}
    unread_b = {i.location for i in b.issues if "not read" in i.diagnostics}
    assert unread_a == unread_b
