"""Every type a mapping can produce is served: readable, searchable, in the CapabilityStatement.

The types come from the mappings themselves (each resource template declares its
``resourceType``) and from every golden output under fixtures/ (``*.expected.json``), so a
new template or golden of a type the API does not serve fails here, before a stored
resource turns out unreadable (as MedicationStatement was).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from adapter.fhir.search_params import SUPPORTED_TYPES
from adapter.mapping.loader import cached_mapping_set
from adapter.mapping.nodes import MappingSet

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
NOT_A_SOURCE = {"_shared", "facilities"}


def _mapping_sets() -> list[MappingSet]:
    folders = sorted(
        p.name for p in MAPPINGS.iterdir() if p.is_dir() and p.name not in NOT_A_SOURCE
    )
    return [cached_mapping_set(MAPPINGS, folder) for folder in folders]


@cache
def template_types() -> dict[str, str]:
    """resource type -> one template file declaring it."""
    out: dict[str, str] = {}
    for mapping_set in _mapping_sets():
        for fmt in mapping_set.formats.values():
            for template in fmt.templates.values():
                out.setdefault(template.resource_type, template.file)
    return out


@cache
def golden_examples() -> dict[str, dict[str, Any]]:
    """resource type -> one resource of that type from a golden output."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "fixtures").rglob("*.expected.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        # an MLLP capture's golden holds one output per message
        outputs = [data, *data.get("messages", [])]
        for resource in (r for output in outputs for r in output.get("resources", [])):
            out.setdefault(resource["resourceType"], resource)
    return out


def test_the_mappings_and_goldens_were_read() -> None:
    templates, goldens = template_types(), golden_examples()
    # the example consortium's mappings make at least these (guards an empty walk)
    assert {"Patient", "Observation", "DiagnosticReport", "MedicationStatement"} <= set(templates)
    assert {"Patient", "Observation", "Composition", "Bundle"} <= set(goldens)


def unserved() -> dict[str, str]:
    """Each type a template or golden output has that the API does not serve -> where."""
    produced = {t: f"template {f}" for t, f in template_types().items()}
    produced.update({t: "a golden output" for t in golden_examples() if t not in produced})
    return {t: where for t, where in produced.items() if t not in SUPPORTED_TYPES}


def test_every_type_a_mapping_produces_is_served() -> None:
    missing = unserved()
    assert not missing, f"types the mappings produce but the API does not serve: {missing}"


def test_a_stored_resource_of_each_produced_type_is_readable_and_searchable(
    client: TestClient, save
) -> None:
    types = sorted(set(template_types()) | set(golden_examples()))
    examples = [
        golden_examples().get(t) or {"resourceType": t, "id": f"served-{t.lower()}"} for t in types
    ]
    save(examples)
    served = {r["type"] for r in client.get("/fhir/metadata").json()["rest"][0]["resource"]}
    failures = []
    for example in examples:
        rtype, rid = example["resourceType"], example["id"]
        read = client.get(f"/fhir/{rtype}/{rid}")
        found = client.get(f"/fhir/{rtype}", params={"_id": rid})
        ids = [e["resource"]["id"] for e in found.json().get("entry", [])]
        if read.status_code != 200 or found.status_code != 200 or ids != [rid]:
            failures.append(f"{rtype}: read {read.status_code}, search {found.status_code} {ids}")
        if rtype not in served:
            failures.append(f"{rtype}: not in the CapabilityStatement")
    assert not failures, failures
