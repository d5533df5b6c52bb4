"""The format-neutral scope ``common/``: its resource templates and datatypes are written once,
read variables only, and serve the files of every format (docs/mapping-language.md, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.formats import FORMATS
from adapter.mapping.json_paths import parse_json
from adapter.mapping.loader import load_mapping_set
from tests.unit.mapping_support import context, errors, hl7, load, of_type, translate, write

# an HL7 v2 message mapping and a JSON one, both making the same common template
HL7_MESSAGE = """\
version: 1
kind: message
format: hl7v2
match:
  message_type: [ORU^R01]
structure: [MSH!, PID!]
ignore: [MSH]
produce:
  - let:
      who: =PID-3.1
      nid: =PID-19
  - resource: person
"""

JSON_MESSAGE = """\
version: 1
kind: message
format: json
match:
  exists: [$.who]
produce:
  - let:
      who: =$.who
      nid: =$.nid
  - resource: person
"""

PERSON = """\
version: 1
kind: resource
resourceType: Patient
id_from:
  - [national-id, "=apply('key', @nid)"]
  - [=@facility.id, =@who]
body:
  identifier:
    - =apply('nid-identifier', @nid)
    - value: =@who
"""

KEY = """\
version: 1
kind: datatype
params: [nid]
body: =first(national_id_18(@nid), national_id(@nid))
"""

NID_IDENTIFIER = """\
version: 1
kind: datatype
params: [nid]
body:
  system: urn:oid:2.16.156.10011.1.3
  value: =national_id(@nid)
"""


def common_root(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    return write(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": HL7_MESSAGE,
            "_shared/common/resources/person.yaml": PERSON,
            "_shared/common/datatypes/key.yaml": KEY,
            "_shared/common/datatypes/nid-identifier.yaml": NID_IDENTIFIER,
            "vendor/json/messages/person.yaml": JSON_MESSAGE,
            **(extra or {}),
        },
    )


def failure(root: Path, folder: str = "_shared") -> MappingDefinitionError:
    with pytest.raises(MappingDefinitionError) as caught:
        load_mapping_set(root, folder)
    return caught.value


def test_one_common_template_serves_every_format(tmp_path: Path) -> None:
    root = common_root(tmp_path)
    from_v2 = translate(load(root), hl7("PID|1||P-1||||||||||||||||110101199003078515"))
    data = parse_json(json.dumps({"who": "P-1", "nid": "110101199003078515"}).encode()).data
    from_json = FORMATS["json"].translate(load(root, "vendor"), data, context())
    assert not errors(from_v2.issues) and not errors(from_json.issues)
    (v2_patient,) = of_type(from_v2, "Patient")
    (json_patient,) = of_type(from_json, "Patient")
    # one template, one id rule: the same person whatever format named them
    assert v2_patient == json_patient
    assert v2_patient["identifier"][0] == {
        "system": "urn:oid:2.16.156.10011.1.3",
        "value": "110101199003078515",
    }


def test_the_common_id_rule_takes_the_18_digit_form(tmp_path: Path) -> None:
    root = common_root(tmp_path)
    old = translate(load(root), hl7("PID|1||P-1||||||||||||||||110101900307851"))
    new = translate(load(root), hl7("PID|1||P-2||||||||||||||||110101199003078515"))
    assert of_type(old, "Patient")[0]["id"] == of_type(new, "Patient")[0]["id"]


def test_a_path_in_a_common_file_is_an_error(tmp_path: Path) -> None:
    with_path = PERSON.replace("value: =@who", "value: =PID-3")
    root = common_root(tmp_path, {"_shared/common/resources/person.yaml": with_path})
    error = failure(root)
    assert error.file.endswith("common/resources/person.yaml")
    assert "reads variables only" in error.message
    assert error.line == 10


def test_a_group_name_in_a_common_file_is_an_error(tmp_path: Path) -> None:
    body = "  note:\n    - each: OBSERVATION\n      emit: =@it\n"
    root = common_root(tmp_path, {"_shared/common/resources/person.yaml": PERSON + body})
    assert "has no groups" in failure(root).message


def test_a_message_mapping_in_common_is_an_error(tmp_path: Path) -> None:
    root = common_root(tmp_path, {"_shared/common/messages/oru.yaml": HL7_MESSAGE})
    error = failure(root)
    assert error.file.endswith("common/messages/oru.yaml")
    assert "<format>/messages/" in error.message


def test_a_format_template_with_a_common_name_is_an_error(tmp_path: Path) -> None:
    root = common_root(tmp_path, {"_shared/hl7v2/resources/person.yaml": PERSON})
    error = failure(root)
    assert error.file.endswith("hl7v2/resources/person.yaml")
    assert "common/resources/person.yaml" in error.message


def test_a_common_file_uses_common_datatypes_only(tmp_path: Path) -> None:
    root = common_root(
        tmp_path,
        {
            "_shared/hl7v2/datatypes/v2-only.yaml": NID_IDENTIFIER,
            "_shared/common/resources/person.yaml": PERSON.replace("nid-identifier", "v2-only"),
        },
    )
    error = failure(root)
    assert error.file.endswith("common/resources/person.yaml")
    assert "no datatype template named 'v2-only'" in error.message


def test_a_system_folder_overrides_a_common_file(tmp_path: Path) -> None:
    override = "version: 1\nextends: _shared\nkind: resource\nbody:\n  active: true\n"
    root = common_root(tmp_path, {"vendor/common/resources/person.yaml": override})
    data = parse_json(json.dumps({"who": "P-1"}).encode()).data
    (patient,) = of_type(
        FORMATS["json"].translate(load(root, "vendor"), data, context()), "Patient"
    )
    assert patient["active"] is True
    assert patient["identifier"] == [{"value": "P-1"}]
