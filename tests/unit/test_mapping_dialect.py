"""A dialect that exists only under tests/ (tests/data/mapping-dialect/acme-lis): laid over a
copy of the real mappings/_shared, loaded and used with no code change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapter.hl7v2 import parse_hl7v2
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.mapping.translation import Translation
from tests.fhir_checks import validate_r4
from tests.unit.mapping_support import errors, of_type, translate

REPO = Path(__file__).resolve().parents[2]
DIALECT = REPO / "tests" / "data" / "mapping-dialect"
MESSAGES = DIALECT / "messages"


@pytest.fixture(scope="module")
def mappings_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mappings")
    shutil.copytree(REPO / "mappings" / "_shared", root / "_shared")
    shutil.copytree(DIALECT / "acme-lis", root / "acme-lis")
    return root


@pytest.fixture(scope="module")
def acme(mappings_root: Path) -> MappingSet:
    return load_mapping_set(mappings_root, "acme-lis")


def run(mappings: MappingSet, name: str) -> Translation:
    return translate(mappings, parse_hl7v2((MESSAGES / name).read_bytes()))


def observations(translation: Translation) -> dict[str, dict]:
    return {o["code"]["text"]: o for o in of_type(translation, "Observation")}


def test_the_dialect_loads_over_shared(acme: MappingSet) -> None:
    assert acme.folder == "acme-lis"
    assert acme.message_for("hl7v2", "ORU^R01") is not None
    # the extension adds to the shared table and keeps what it had
    flags = acme.concept_maps["observation-interpretation"]
    assert flags.lookup("HI").code == "H"  # type: ignore[union-attr]
    assert flags.lookup("偏高").code == "H"  # type: ignore[union-attr]


def test_numbers_typed_num_become_quantities_and_vendor_flags_map(acme: MappingSet) -> None:
    translation = run(acme, "acme-cbc.hl7")
    assert not errors(translation.issues), translation.issues
    results = observations(translation)
    wbc = results["白细胞计数"]
    assert wbc["valueQuantity"] == {
        "value": 12.4,
        "unit": "10^9/L",
        "system": "http://unitsofmeasure.org",
        "code": "10*9/L",
    }
    assert wbc["status"] == "final"  # OBX-11 empty: the dialect's default
    assert wbc["interpretation"][0]["coding"][0]["code"] == "H"
    assert results["血小板计数"]["interpretation"][0]["coding"][0]["code"] == "AA"
    assert results["血红蛋白"]["interpretation"][0]["coding"][0]["code"] == "N"
    for resource in translation.resources:
        assert validate_r4(resource) == [], resource["resourceType"]


def test_a_number_with_a_comparator_and_text_results(acme: MappingSet) -> None:
    translation = run(acme, "acme-chem.hl7")
    assert not errors(translation.issues), translation.issues
    results = observations(translation)
    assert results["C反应蛋白"]["valueQuantity"]["comparator"] == "<"
    assert results["C反应蛋白"]["valueQuantity"]["value"] == 0.5
    assert results["葡萄糖"]["valueQuantity"]["value"] == 3.2
    assert results["葡萄糖"]["interpretation"][0]["coding"][0]["code"] == "L"
    assert results["乙肝表面抗原"]["valueString"] == "阴性"
    # the two messages are about one patient: one id
    patients = {p["id"] for p in of_type(translation, "Patient")}
    assert patients == {p["id"] for p in of_type(run(acme, "acme-cbc.hl7"), "Patient")}


def test_without_the_dialect_the_same_message_loses_its_values(mappings_root: Path) -> None:
    """The dialect rule is what made the Quantities: _shared alone does not read NUM."""
    shared = load_mapping_set(mappings_root, "_shared")
    translation = run(shared, "acme-cbc.hl7")
    results = observations(translation)
    assert all("valueQuantity" not in o for o in results.values())
    assert any(
        i.severity == "warning" and "OBX-2 value type" in i.diagnostics for i in translation.issues
    )
    # and the vendor flags are unknown codes there
    assert all("coding" not in o["interpretation"][0] for o in results.values())
