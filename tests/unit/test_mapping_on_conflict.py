"""The ``on_conflict`` key of a resource template: checked at load time, one per type."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.loader import load_mapping_set
from tests.unit.mapping_support import mapping_root

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


def test_policy_is_collected_per_resource_type(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {
        "_shared/hl7v2/resources/thing.yaml": TEMPLATE.format(policy=KEEP_FIRST)})
    mappings = load_mapping_set(root, "_shared")
    assert mappings.merge_policies == {"Basic": {"policy": "keep-first-and-warn",
                                                 "compare": ["code"],
                                                 "accumulate": ["identifier"]}}


def test_unknown_policy_is_a_load_error(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {
        "_shared/hl7v2/resources/thing.yaml": TEMPLATE.format(policy="  policy: last-wins")})
    with pytest.raises(MappingDefinitionError, match=r"thing\.yaml"):
        load_mapping_set(root, "_shared")


def test_two_policies_for_one_type_is_a_load_error(tmp_path: Path) -> None:
    other = "  policy: keep-first-and-warn\n  compare: [subject]"
    root = mapping_root(tmp_path, {
        "_shared/hl7v2/resources/thing.yaml": TEMPLATE.format(policy=KEEP_FIRST),
        "_shared/hl7v2/resources/other.yaml": TEMPLATE.format(policy=other)})
    with pytest.raises(MappingDefinitionError, match="one policy per resource type"):
        load_mapping_set(root, "_shared")
