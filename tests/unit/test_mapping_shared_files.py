"""Compiled mapping files shared between the sets of one process (adapter/mapping/
shared_files.py): the same file with the same content is compiled once and its nodes serve
every set; a different content, another file overlaid on it or other format options make
another compilation; names are still checked per set."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping import shared_files, xml_paths
from tests.unit.mapping_support import hl7, load, mapping_root, of_type, translate, write

TABLE = """\
version: 1
kind: concept-map
target_system: http://example.org/flags
map:
  H: high
unmapped:
  action: omit
"""

BODY = """
status: final
code:
  text: =OBX-3.2
flag: =map('flags', OBX-8)
"""

MESSAGE = hl7("PID|1||P1", "OBR|1||F1", "OBX|1|ST|GLU^血糖||5.1|||H|||F")


def test_two_sets_share_the_compiled_shared_files(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {"_shared/concept-maps/flags.yaml": TABLE, "acme/concept-maps/extra.yaml": TABLE},
        body=BODY,
    )
    first, second = load(root, "acme"), load(root, "_shared")
    assert first is not second
    for fmt in ("hl7v2",):
        assert first.formats[fmt].templates["thing"] is second.formats[fmt].templates["thing"]
        assert first.formats[fmt].messages["oru"] is second.formats[fmt].messages["oru"]
    assert first.concept_maps["flags"] is second.concept_maps["flags"]
    assert "extra" in first.concept_maps and "extra" not in second.concept_maps
    for mappings in (first, second):  # both translate with the shared nodes
        (basic,) = of_type(translate(mappings, MESSAGE), "Basic")
        assert basic["flag"] == "high" and basic["code"] == {"text": "血糖"}


def test_a_file_overlaid_by_a_folder_is_its_own(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/concept-maps/flags.yaml": TABLE,
            "acme/concept-maps/flags.yaml": TABLE.replace("high", "hoch"),
        },
        body=BODY,
    )
    plain, acme = load(root, "_shared"), load(root, "acme")
    assert plain.concept_maps["flags"] is not acme.concept_maps["flags"]
    assert plain.concept_maps["flags"].lookup("H").code == "high"  # type: ignore[union-attr]
    assert acme.concept_maps["flags"].lookup("H").code == "hoch"  # type: ignore[union-attr]
    (basic,) = of_type(translate(acme, MESSAGE), "Basic")
    assert basic["flag"] == "hoch"


def test_a_changed_file_is_compiled_again_and_replaces_its_entry(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/concept-maps/flags.yaml": TABLE}, body=BODY)
    before = load(root)
    entries = shared_files.size()
    write(root, {"_shared/concept-maps/flags.yaml": TABLE.replace("high", "higher")})
    after = load(root)
    assert after.concept_maps["flags"] is not before.concept_maps["flags"]
    assert after.concept_maps["flags"].lookup("H").code == "higher"  # type: ignore[union-attr]
    # the unchanged template is still shared; the old table's entry was replaced, not kept
    assert after.formats["hl7v2"].templates["thing"] is before.formats["hl7v2"].templates["thing"]
    assert shared_files.size() == entries


def test_names_are_checked_per_set_for_a_shared_file(tmp_path: Path) -> None:
    """The shared template needs a table only the system folder has: the system's set
    loads; ``_shared`` alone (the same compiled template) fails at the template's line."""
    root = mapping_root(tmp_path, {"acme/concept-maps/flags.yaml": TABLE}, body=BODY)
    assert load(root, "acme").concept_maps["flags"] is not None
    with pytest.raises(MappingDefinitionError) as caught:
        load(root, "_shared")
    assert "no concept map named 'flags'" in caught.value.message
    assert caught.value.file.endswith("thing.yaml") and caught.value.line == 10


def test_a_file_that_fails_is_not_kept(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="status: =nosuch(OBX-5)")
    for _ in range(2):  # the second load fails the same way: nothing half-made was kept
        with pytest.raises(MappingDefinitionError) as caught:
            load(root)
        assert "nosuch" in caught.value.message


def test_xml_paths_compiled_once_per_text_and_namespaces() -> None:
    cda = {"cda": "urn:hl7-org:v3"}
    path = xml_paths.compile_path("cda:id/@extension", cda)
    assert xml_paths.compile_path(" cda:id/@extension ", dict(cda)) is path
    other = xml_paths.compile_path("cda:id/@extension", {"cda": "urn:example:other"})
    assert other is not path
    with pytest.raises(ValueError):  # an error is raised every time, never cached
        xml_paths.compile_path("cda:id[", cda)
    with pytest.raises(ValueError):
        xml_paths.compile_path("cda:id[", cda)
