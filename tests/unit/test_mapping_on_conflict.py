"""The ``on_conflict`` key of a resource template: checked at load time, carried by the
resources its template makes (not by every resource of the type)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.loader import load_mapping_set
from tests.unit.mapping_support import hl7, mapping_root, translate

TEMPLATE = """\
version: 1
kind: resource
resourceType: Basic
id_from:
  - [=OBX-3.1]
on_conflict:
{policy}
body:
  code:
    text: =OBX-3.2
"""
KEEP_FIRST = "  policy: keep-first-and-warn\n  compare: [code]\n  accumulate: [identifier]"


def test_policy_travels_with_the_resources_its_template_makes(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path, {"_shared/hl7v2/resources/thing.yaml": TEMPLATE.format(policy=KEEP_FIRST)}
    )
    mappings = load_mapping_set(root, "_shared")
    assert mappings.formats["hl7v2"].templates["thing"].on_conflict == {
        "policy": "keep-first-and-warn",
        "compare": ["code"],
        "accumulate": ["identifier"],
    }
    translation = translate(mappings, hl7("PID|1||P1", "OBR|1||R1|PANEL", "OBX|1|NM|A^甲||1"))
    made = [
        (r["resourceType"], r["id"]) for r in translation.resources if r["resourceType"] == "Basic"
    ]
    assert made and set(translation.policies) == set(made)


def test_unknown_policy_is_a_load_error(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {"_shared/hl7v2/resources/thing.yaml": TEMPLATE.format(policy="  policy: last-wins")},
    )
    with pytest.raises(MappingDefinitionError, match=r"thing\.yaml"):
        load_mapping_set(root, "_shared")
