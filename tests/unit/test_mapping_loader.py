"""Loading mapping sets: schema errors and broken references name file and line; folders
overlay ``_shared`` file by file or merge onto it with ``extends: _shared``."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.loader import load_mapping_set
from tests.unit.mapping_support import (
    hl7,
    load,
    mapping_root,
    of_type,
    translate,
    write,
)

RESOURCE = """\
version: 1
kind: resource
resourceType: Basic
id_from:
  - [=OBX-3.1]
body:
  code:
    text: =OBX-3.2
"""

TABLE = """\
version: 1
kind: concept-map
target_system: http://example.org/flags
map:
  H: high
  L: low
unmapped:
  action: omit
"""


def failure(root: Path, folder: str = "_shared", **kwargs: object) -> MappingDefinitionError:
    with pytest.raises(MappingDefinitionError) as caught:
        load_mapping_set(root, folder, **kwargs)  # type: ignore[arg-type]
    return caught.value


def line_of(path: Path, text: str) -> int:
    """1-based number of the first line of ``path`` containing ``text``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


# -- schema errors ------------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path, {"_shared/hl7v2/resources/thing.yaml": RESOURCE + "bodyy:\n  status: final\n"}
    )
    error = failure(root)
    assert error.file.endswith("resources/thing.yaml")
    assert "bodyy" in error.message
    # the whole file is the object with the extra key: line 1
    assert error.line == 1


def test_wrong_kind(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": RESOURCE.replace(
                "kind: resource", "kind: resourse"
            )
        },
    )
    error = failure(root)
    assert error.line == 2
    assert "kind must be one of" in error.message and "resourse" in error.message


def test_missing_id_from(tmp_path: Path) -> None:
    text = RESOURCE.replace("id_from:\n  - [=OBX-3.1]\n", "")
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/thing.yaml": text})
    error = failure(root)
    assert "'id_from' is a required property" in error.message
    assert error.file.endswith("thing.yaml") and error.line == 1


def test_wrong_type_of_a_value_names_its_line(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path, {"_shared/hl7v2/resources/thing.yaml": RESOURCE + "required: status\n"}
    )
    error = failure(root)
    assert error.line == 9
    assert "required" in error.message


def test_bad_unmapped_action(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path, {"_shared/concept-maps/flags.yaml": TABLE.replace("action: omit", "action: drop")}
    )
    error = failure(root)
    assert error.file.endswith("concept-maps/flags.yaml")
    assert error.line == 8
    assert "drop" in error.message


def test_fixed_without_code(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {"_shared/concept-maps/flags.yaml": TABLE.replace("action: omit", "action: fixed")},
    )
    error = failure(root)
    assert error.line == 7  # "unmapped:"
    assert "'code' is a required property" in error.message


def test_a_concept_map_outside_concept_maps(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/flags.yaml": TABLE})
    error = failure(root)
    assert "concept-maps/" in error.message and error.line == 2


def test_a_template_in_the_wrong_folder(tmp_path: Path) -> None:
    """hl7v2/resource/ (singular) is a typo: the file would silently be a second template."""
    root = mapping_root(tmp_path, {"_shared/hl7v2/resource/thing.yaml": RESOURCE})
    error = failure(root)
    assert error.file.endswith("hl7v2/resource/thing.yaml")
    assert "resources/" in error.message


@pytest.mark.parametrize("key", ["0010", "true", "1.50", "~"])
def test_a_concept_map_code_that_yaml_reads_as_no_text(tmp_path: Path, key: str) -> None:
    """YAML reads 0010 as the number 8 and true as a boolean: an unquoted code would never
    match what the message says, so it is an error with its line."""
    text = TABLE.replace("  L: low\n", f"  L: low\n  {key}: other\n")
    root = mapping_root(tmp_path, {"_shared/concept-maps/flags.yaml": text}, body="status: final")
    error = failure(root)
    assert error.file.endswith("flags.yaml")
    assert error.line == 7
    assert "quote" in error.message


def test_a_quoted_numeric_code_is_fine(tmp_path: Path) -> None:
    text = TABLE.replace("  L: low\n", '  L: low\n  "0010": other\n')
    root = mapping_root(tmp_path, {"_shared/concept-maps/flags.yaml": text}, body="status: final")
    assert load(root).concept_maps["flags"].lookup("0010").code == "other"  # type: ignore[union-attr]


def test_a_body_with_if_at_the_top_is_an_error(tmp_path: Path) -> None:
    """A condition on the whole resource is ``skip:``; a gated body would silently be empty."""
    root = mapping_root(
        tmp_path,
        body="""
        if: =exists(OBX-5)
        status: final
    """,
    )
    error = failure(root)
    assert "skip" in error.message
    assert error.line == 6


# -- YAML itself ------------------------------------------------------------------------------


def test_yaml_syntax_error_with_line(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path, {"_shared/hl7v2/resources/thing.yaml": RESOURCE + "  status: [final\n"}
    )
    error = failure(root)
    assert error.file.endswith("thing.yaml")
    assert error.line is not None and error.line >= 9


def test_a_flow_list_with_an_unquoted_comma(tmp_path: Path) -> None:
    """Decision 0006: `[=first(A, B)]` splits on the comma; the loader names the line."""
    root = mapping_root(
        tmp_path,
        body="""
        status: final
        code:
          coding: [=first(OBX-3.1, OBX-3.2)]
    """,
    )
    error = failure(root)
    assert error.line == 9


def test_duplicate_keys(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        body="""
        status: final
        code:
          text: =OBX-3.2
        status: amended
    """,
    )
    error = failure(root)
    assert "duplicate key 'status'" in error.message
    assert error.line == 10


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/concept-maps/flags.yaml": "- just\n- a list\n"})
    error = failure(root)
    assert error.line == 1 and "YAML mapping" in error.message


# -- references -------------------------------------------------------------------------------


def test_missing_concept_map(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        body="""
        status: final
        flag: =map('flagz', OBX-8)
    """,
    )
    error = failure(root)
    assert "no concept map named 'flagz'" in error.message
    assert error.file.endswith("thing.yaml") and error.line == 8


def test_missing_datatype(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        body="""
        status: final
        valueQuantity: =apply('quantty', OBX-5, OBX-6)
    """,
    )
    error = failure(root)
    assert "no datatype template named 'quantty'" in error.message
    assert error.line == 8


def test_datatype_called_with_the_wrong_number_of_arguments(tmp_path: Path) -> None:
    """Missing arguments would silently read same-named variables of the caller."""
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/datatypes/qty.yaml": """\
            version: 1
            kind: datatype
            params: [number, unit]
            body:
              value: =text_to_decimal(@number)
              unit: =@unit
        """
        },
        body="""
        status: final
        valueQuantity: =apply('qty', OBX-5)
    """,
    )
    error = failure(root)
    assert "qty" in error.message and "2" in error.message
    assert error.line == 8


def test_missing_resource_template_names_the_step(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="status: final")
    message = root / "_shared/hl7v2/messages/oru.yaml"
    message.write_text(message.read_text().replace("resource: thing", "resource: thingy"))
    error = failure(root)
    assert "no resource template named 'thingy'" in error.message
    assert error.file.endswith("messages/oru.yaml")
    assert error.line == line_of(message, "resource: thingy")


def test_missing_system_folder(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="status: final")
    error = failure(root, "no-such-lis")
    assert "no-such-lis" in error.message


# -- overlays ---------------------------------------------------------------------------------


def test_extends_merges_dicts_replaces_lists_and_null_removes(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from:
              - [=OBX-3.1]
            body:
              status: final
              code:
                text: =OBX-3.2
                coding:
                  - system: http://example.org/a
                    code: =OBX-3.1
              note:
                - text: shared note
              subject: =OBX-4
        """,
            "acme/hl7v2/resources/thing.yaml": """\
            version: 2
            extends: _shared
            kind: resource
            body:
              code:
                coding:
                  - system: http://example.org/b
                    code: =OBX-3.1
              note:
                - text: acme note
              subject: null
              issued: =dtm_to_instant(OBX-14)
        """,
        },
    )
    mappings = load(root, "acme")
    assert mappings.files["hl7v2/resources/thing.yaml"] == 2
    translation = translate(
        mappings, hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|GLU^葡萄糖|1|5.2||||||F|||20261120083000")
    )
    (thing,) = of_type(translation, "Basic")
    assert thing["status"] == "final"  # kept from _shared
    assert thing["code"] == {
        "text": "葡萄糖",  # merged key by key
        "coding": [{"system": "http://example.org/b", "code": "GLU"}],
    }
    assert thing["note"] == [{"text": "acme note"}]  # the list replaced, not appended
    assert "subject" not in thing  # removed by null
    assert thing["issued"] == "2026-11-20T08:30:00+08:00"


def test_errors_in_a_merged_file_name_the_file_that_wrote_the_line(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "acme/hl7v2/resources/thing.yaml": """\
            version: 1
            extends: _shared
            kind: resource
            body:
              issued: =dtm_to_instant(OBX-14
        """
        },
        body="status: =OBX-11",
    )
    error = failure(root, "acme")
    assert error.file.endswith("acme/hl7v2/resources/thing.yaml")
    assert error.line == 5


def test_a_system_file_without_extends_replaces_the_shared_one(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "acme/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from:
              - [=OBX-3.1]
            body:
              code:
                text: acme
        """
        },
        body="""
        status: final
        code:
          text: shared
    """,
    )
    translation = translate(load(root, "acme"), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|GLU|1|5"))
    (thing,) = of_type(translation, "Basic")
    assert thing["code"] == {"text": "acme"}
    assert "status" not in thing
    # _shared alone still has its own
    (shared,) = of_type(
        translate(load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|GLU|1|5")), "Basic"
    )
    assert shared["code"] == {"text": "shared"} and shared["status"] == "final"


def test_extends_without_a_shared_base_is_an_error(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "acme/hl7v2/resources/extra.yaml": """\
            version: 1
            # a comment
            extends: _shared
            kind: resource
        """
        },
        body="status: final",
    )
    error = failure(root, "acme")
    assert error.file.endswith("acme/hl7v2/resources/extra.yaml")
    assert error.line == 3
    assert "no earlier folder has hl7v2/resources/extra.yaml" in error.message


def test_extends_something_else_is_a_schema_error(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {"acme/hl7v2/resources/thing.yaml": RESOURCE.replace("kind:", "extends: _sharde\nkind:")},
        body="status: final",
    )
    error = failure(root, "acme")
    assert error.line == 2 and "_shared" in error.message


def test_facility_overlay_extends_a_system_table(tmp_path: Path) -> None:
    """_shared, then the system folder, then the facility: each extends what came before."""
    root = mapping_root(
        tmp_path,
        {
            "_shared/concept-maps/flags.yaml": TABLE,
            "acme/concept-maps/flags.yaml": """\
            version: 2
            extends: _shared
            kind: concept-map
            map:
              偏高: high
        """,
            "facilities/town/concept-maps/flags.yaml": """\
            version: 3
            extends: _shared
            kind: concept-map
            map:
              "↑": high
              L: very-low
            unmapped:
              action: fixed
              code: unknown
        """,
        },
        body="status: final",
    )
    plain = load(root, "acme").concept_maps["flags"]
    assert plain.lookup("↑") is None and plain.lookup("L").code == "low"  # type: ignore[union-attr]
    mappings = load(root, "acme", overlays=("facilities/town",))
    flags = mappings.concept_maps["flags"]
    assert {code: flags.lookup(code).code for code in ("H", "偏高", "↑", "L")} == {  # type: ignore[union-attr]
        "H": "high",
        "偏高": "high",
        "↑": "high",
        "L": "very-low",
    }
    assert flags.action == "fixed" and flags.fixed is not None and flags.fixed.code == "unknown"
    assert mappings.files["concept-maps/flags.yaml"] == 3
    assert mappings.folder == "acme+facilities/town"


def test_fingerprint_changes_with_any_file(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/concept-maps/flags.yaml": TABLE}, body="status: final")
    before = load(root).fingerprint
    assert load(root).fingerprint == before
    write(root, {"_shared/concept-maps/flags.yaml": TABLE.replace("high", "higher")})
    assert load(root).fingerprint != before


def test_the_real_mapping_sets_load() -> None:
    root = Path(__file__).resolve().parents[2] / "mappings"
    for folder in ("_shared", "huikang-lis", "yunyi-lis"):
        mappings = load_mapping_set(root, folder)
        assert mappings.message_for("hl7v2", "ORU^R01") is not None


def test_each_step_naming_no_part_of_its_group(tmp_path: Path) -> None:
    """A typo in a step's group would silently make nothing."""
    root = mapping_root(tmp_path, body="status: final")
    message = root / "_shared/hl7v2/messages/oru.yaml"
    message.write_text(message.read_text().replace("each: OBSERVATION", "each: OBSERVATIONS"))
    error = failure(root)
    assert "'OBSERVATIONS' is not a group or segment of ORDER_OBSERVATION" in error.message
    assert "OBR" in error.message
    assert error.line == line_of(message, "each: OBSERVATIONS")


def test_each_step_over_a_segment_or_a_path(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="status: final")
    message = root / "_shared/hl7v2/messages/oru.yaml"
    message.write_text(
        message.read_text().replace(
            "          - each: OBSERVATION\n",
            "          - each: NTE\n            do: []\n"
            "          - each: =OBR-3\n            do: []\n"
            "          - each: OBSERVATION\n",
        )
    )
    assert load(root).message_for("hl7v2", "ORU^R01") is not None
