"""Every ORM^O01 / OML^O21 fixture: translated, valid FHIR R4, the hand-written facts hold,
the output equals its golden file; a cancel or status message names the same
ServiceRequest as the order; orders point at the ADT Encounter of their visit."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline import Translator
from tests.fhir_checks import validate_r4
from tests.golden import check_golden
from tests.mappings.adt_facts import check_order_case
from tests.mappings.conftest import FIXTURES

V2 = FIXTURES / "hl7v2"
ORDERS = V2 / "orders"
CASES: list[dict[str, Any]] = yaml.safe_load((ORDERS / "cases.yaml").read_text(encoding="utf-8"))
IDS = [c["file"] for c in CASES]


def translate(translator: Translator, path, source: str) -> tuple[list[dict], list[dict]]:
    outcome = translator.translate(path.read_bytes(), source)
    return outcome.resources, [i.as_dict() for i in outcome.issues]


def test_every_fixture_file_has_a_case() -> None:
    files = {p.relative_to(ORDERS).as_posix() for p in ORDERS.rglob("*.hl7")}
    assert files == {c["file"] for c in CASES}
    controls = {(parse_hl7v2((ORDERS / c["file"]).read_bytes()).message_type(),) for c in CASES}
    assert controls == {("ORM^O01",), ("OML^O21",)}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_order_case(translator: Translator, case: dict[str, Any]) -> None:
    resources, issues = translate(translator, ORDERS / case["file"], case["source"])
    errors = [i for i in issues if i["severity"] in ("error", "fatal")]
    assert not errors, f"{case['file']} failed: {errors}"
    problems = check_order_case(resources, case["expect"])
    for resource in resources:
        problems.extend(
            f"{resource['resourceType']}/{resource['id']}: {p}" for p in validate_r4(resource)
        )
    golden = ORDERS / (case["file"].removesuffix(".hl7") + ".expected.json")
    problems.extend(check_golden(golden, {"resources": resources, "issues": issues}))
    assert not problems, "\n".join([case["file"], *problems])


def _first(resources: list[dict], kind: str) -> dict:
    return next(r for r in resources if r["resourceType"] == kind)


@pytest.mark.parametrize(
    "case", [c for c in CASES if "same_order_as" in c], ids=lambda c: c["file"]
)
def test_a_later_message_names_the_same_order(translator: Translator, case: dict[str, Any]) -> None:
    later, _ = translate(translator, ORDERS / case["file"], case["source"])
    first, _ = translate(translator, ORDERS / case["same_order_as"], case["source"])
    assert _first(later, "ServiceRequest")["id"] == _first(first, "ServiceRequest")["id"]


@pytest.mark.parametrize("case", [c for c in CASES if "encounter_of" in c], ids=lambda c: c["file"])
def test_orders_point_at_the_adt_encounter(translator: Translator, case: dict[str, Any]) -> None:
    orders, _ = translate(translator, ORDERS / case["file"], case["source"])
    adt, _ = translate(translator, V2 / case["encounter_of"], case["source"])
    encounter = f"Encounter/{_first(adt, 'Encounter')['id']}"
    requests = [r for r in orders if r["resourceType"] == "ServiceRequest"]
    assert requests and all(r["encounter"]["reference"] == encounter for r in requests)


def test_a_new_order_without_item_is_refused_with_its_place(translator: Translator) -> None:
    raw = (ORDERS / "county-his" / "orm-exam-ct-gbk.hl7").read_bytes()
    raw = raw.replace("CT0102^胸部CT平扫^99QSHIS".encode("gbk"), b"")
    outcome = translator.translate(raw, "county-his")
    errors = [i for i in outcome.issues if i.severity == "error"]
    assert any("names no ordered item" in i.diagnostics for i in errors), errors
    assert any((i.location or "").startswith("OBR[1]-4") for i in errors), errors
