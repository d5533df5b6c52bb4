"""JSON sources: reading (encodings, numbers as written, errors with line and column), the path
syntax, each over arrays with relative paths, match selection, the unread report, load
errors with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.errors import InputTooLargeError, MappingDefinitionError, ParseError
from adapter.mapping.formats import FORMATS
from adapter.mapping.json_paths import compile_path, format_location, parse_json
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.mapping.translation import Translation
from tests.unit.mapping_support import context, errors, of_type, write

NATIONAL_ID = "110101199003078515"

REPORT = {
    "docType": "lab-report",
    "reportNo": "R-100",
    "reportTime": "2026-11-20 08:30:00",
    "patient": {"idCard": NATIONAL_ID, "姓名": "李四", "sex": "2", "phone": "13800000000"},
    "items": [
        {"code": "GLU", "name": "葡萄糖", "result": 5.60, "unit": "mmol/L"},
        {"code": "HGB", "name": "血红蛋白", "result": 135, "unit": "g/L", "flag": "N"},
    ],
}

MESSAGE = """\
version: 1
kind: message
format: json
match:
  when: {$.docType: lab-report}
  exists: [$.items]
ignore: [$.docType, $.patient.phone]   # docType: read by match
produce:
  - resource: patient
    bind: patient
  - each: =$.items
    do:
      - resource: observation
"""

PATIENT = """\
version: 1
kind: resource
resourceType: Patient
id_from:
  - [national-id, =$.patient.idCard]
body:
  identifier:
    - system: urn:oid:2.16.156.10011.1.3
      value: =national_id($.patient.idCard)
  name:
    - text: =$.patient.姓名
  gender: =map('gender', $.patient.sex)
"""

OBSERVATION = """\
version: 1
kind: resource
resourceType: Observation
id_from:
  - [=$.reportNo, =.code]
body:
  status: final
  code:
    coding:
      - system: =facility_system('lab-item')
        code: =.code
        display: =.name
  subject: =ref(@patient)
  effectiveDateTime: =dtm_to_datetime($.reportTime)
  valueQuantity:
    value: =text_to_decimal(.result)
    unit: =.unit
"""

GENDER = """\
version: 1
kind: concept-map
map: {"1": male, "2": female}
unmapped: {action: keep}
"""


def json_root(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    return write(
        tmp_path / "mappings",
        {
            "_shared/json/messages/lab-report.yaml": MESSAGE,
            "_shared/json/resources/patient.yaml": PATIENT,
            "_shared/json/resources/observation.yaml": OBSERVATION,
            "_shared/concept-maps/gender.yaml": GENDER,
            **(extra or {}),
        },
    )


@pytest.fixture
def mappings(tmp_path: Path) -> MappingSet:
    return load_mapping_set(json_root(tmp_path), "_shared")


def run(mappings: MappingSet, raw: bytes | str | dict) -> Translation:
    if isinstance(raw, dict):
        raw = json.dumps(raw, ensure_ascii=False)
    if isinstance(raw, str):
        raw = raw.encode()
    return FORMATS["json"].translate(mappings, parse_json(raw).data, context())


def test_json_becomes_a_patient_and_observations(mappings: MappingSet) -> None:
    raw = json.dumps(REPORT, ensure_ascii=False).replace("5.6", "5.60")
    translation = run(mappings, raw)

    assert errors(translation.issues) == []
    [patient] = of_type(translation, "Patient")
    assert patient["name"] == [{"text": "李四"}] and patient["gender"] == "female"
    assert patient["identifier"][0]["value"] == NATIONAL_ID
    observations = of_type(translation, "Observation")
    assert [(o["code"]["coding"][0]["code"], o["valueQuantity"]) for o in observations] == [
        ("GLU", {"value": 5.6, "unit": "mmol/L"}),
        ("HGB", {"value": 135, "unit": "g/L"}),
    ]
    assert {o["effectiveDateTime"] for o in observations} == {"2026-11-20T08:30:00+08:00"}
    assert {o["subject"]["reference"] for o in observations} == {f"Patient/{patient['id']}"}
    # the flag of the second item was read by no rule; the phone is ignored on purpose
    assert translation.unread == ["$.items[1].flag"]
    [note] = [i for i in translation.issues if "not read" in i.diagnostics]
    # a value left behind is content lost: a warning (JSON's default clinical: ["*"])
    assert note.severity == "warning" and note.location == "$.items[1].flag"


def test_an_unread_object_is_listed_once(mappings: MappingSet) -> None:
    translation = run(
        mappings,
        {**REPORT, "doctor": {"name": "王医生", "code": "D01"}, "empty": {"a": None, "b": ""}},
    )
    assert "$.doctor" in translation.unread
    assert not any(where.startswith("$.doctor.") for where in translation.unread)
    assert not any(where.startswith("$.empty") for where in translation.unread)


def test_value_errors_name_the_json_path(mappings: MappingSet) -> None:
    report = json.loads(json.dumps(REPORT))
    report["items"][1]["result"] = "阳性"
    translation = run(mappings, report)
    [error] = errors(translation.issues)
    assert error.location == "$.items[1].result"
    assert [o["code"]["coding"][0]["code"] for o in of_type(translation, "Observation")] == ["GLU"]


def test_match_selects_between_document_kinds(tmp_path: Path) -> None:
    other = MESSAGE.replace("lab-report}", "exam-report}").replace(
        "exists: [$.items]", "exists: [$.findings]"
    )
    mappings = load_mapping_set(
        json_root(tmp_path, {"_shared/json/messages/exam-report.yaml": other}), "_shared"
    )
    assert run(mappings, REPORT).mapping.endswith("lab-report.yaml@v1")  # type: ignore[union-attr]
    [error] = run(mappings, {**REPORT, "docType": "referral"}).issues
    assert error.code == "not-supported" and error.location == "$"
    assert "$.docType = 'lab-report'" in error.diagnostics
    [error] = run(mappings, {**REPORT, "items": []}).issues  # exists needs a non-empty value
    assert error.code == "not-supported"


def test_scalar_arrays_and_wildcards(tmp_path: Path) -> None:
    root = write(
        tmp_path / "m",
        {
            "_shared/json/messages/tags.yaml": """\
            version: 1
            kind: message
            format: json
            match: {exists: [$.id]}
            produce: [{resource: basic}]
            """,
            "_shared/json/resources/basic.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from: [[=$.id]]
            body:
              code:
                coding:
                  - each: =$.tags
                    emit: {code: =@it}
              extension:
                - each: =$.orders[*].items[*]
                  as: item
                  emit:
                    url: https://example.cn/item
                    valueString: =concat(.code, ':', $['id'])
              identifier:
                - value: =$.orders[-1].no
            """,
        },
    )
    data = {
        "id": "b1",
        "tags": ["a", "", "c"],
        "orders": [
            {"no": "o1", "items": [{"code": "x"}, {"code": "y"}]},
            {"no": "o2", "items": [{"code": "z"}]},
        ],
    }
    translation = run(load_mapping_set(root, "_shared"), data)
    [basic] = translation.resources
    assert basic["code"]["coding"] == [{"code": "a"}, {"code": "c"}]
    assert [e["valueString"] for e in basic["extension"]] == ["x:b1", "y:b1", "z:b1"]
    assert basic["identifier"] == [{"value": "o2"}]
    assert translation.unread == ["$.orders[0].no"]


# -- paths and reading -------------------------------------------------------------------------


def test_path_syntax() -> None:
    path = compile_path("$.patient['home address'].lines[0]")
    assert path.absolute and path.steps == ("patient", "home address", "lines", 0)
    assert not compile_path(".code").absolute
    assert compile_path(".").steps == ()
    assert (
        format_location(("patient", "home address", "lines", 0))
        == "$.patient['home address'].lines[0]"
    )
    assert format_location(("患者", "姓名")) == "$.患者.姓名"
    for bad in ("patient.name", "$.a[", "$.a..b", "$[x]"):
        with pytest.raises(ValueError):
            compile_path(bad)


def test_numbers_keep_how_they_were_written() -> None:
    data = parse_json(b'{"a": 12.50, "b": 3, "c": true, "d": null}').data
    assert str(data["a"]) == "12.50" and data["b"] == 3 and data["c"] is True


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"a": 1,\n "b": }', "line 2, column 7"),
        (b'{"a": NaN}', "document"),
        (b"[" * 100000 + b"]" * 100000, "document"),
    ],
)
def test_bad_json_is_a_parse_error_with_a_location(raw: bytes, where: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_json(raw)
    assert info.value.location == where


def test_encodings_and_duplicate_keys() -> None:
    text = '{"姓名": "张三", "姓名": "李四"}'
    for encoded, codec in (
        (text.encode("utf-8"), "utf-8"),
        (text.encode("utf-16"), "utf-16"),
        (b"\xef\xbb\xbf" + text.encode(), "utf-8"),
    ):
        document = parse_json(encoded)
        assert document.data == {"姓名": "李四"} and document.encoding == codec
        assert [i.severity for i in document.issues] == ["warning"]  # the duplicate key
    gbk = parse_json('{"姓名": "张三"}'.encode("gbk"))
    assert gbk.data == {"姓名": "张三"} and gbk.encoding == "gb18030"
    assert "GB18030" in gbk.issues[0].diagnostics


def test_size_limit() -> None:
    with pytest.raises(InputTooLargeError):
        parse_json(b'{"a": "' + b"x" * 100 + b'"}', max_bytes=50)


# -- load errors -------------------------------------------------------------------------------


def load_error(tmp_path: Path, files: dict[str, str]) -> MappingDefinitionError:
    with pytest.raises(MappingDefinitionError) as info:
        load_mapping_set(json_root(tmp_path, files), "_shared")
    return info.value


def test_bad_json_path_names_file_and_line(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        {
            "_shared/json/resources/observation.yaml": OBSERVATION.replace(
                "unit: =.unit", "unit: =.unit[x]"
            )
        },
    )
    assert error.file.endswith("observation.yaml") and error.line == 17
    assert "not a JSON path" in error.message
    error = load_error(
        tmp_path,
        {
            "_shared/json/resources/observation.yaml": OBSERVATION.replace(
                "unit: =.unit", "unit: =unit"
            )
        },
    )
    assert "starts with $" in error.message and error.line == 17


def test_bad_match_and_ignore_paths_name_their_line(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        {
            "_shared/json/messages/lab-report.yaml": MESSAGE.replace(
                "exists: [$.items]", "exists: [.items]"
            )
        },
    )
    assert "match" in error.message and error.line == 6
    error = load_error(
        tmp_path,
        {
            "_shared/json/messages/lab-report.yaml": MESSAGE.replace(
                "$.patient.phone]", "$.patient[phone]]"
            )
        },
    )
    assert "ignore" in error.message and error.line == 7


def test_a_mapping_s_clinical_names_the_keys_whose_loss_is_a_warning(tmp_path: Path) -> None:
    message = MESSAGE.replace("ignore: [", "clinical: [value]\nignore: [")
    mappings = load_mapping_set(
        json_root(tmp_path, {"_shared/json/messages/lab-report.yaml": message}), "_shared"
    )
    [note] = [i for i in run(mappings, REPORT).issues if "not read" in i.diagnostics]
    # flag is not named: an information for this source
    assert (note.severity, note.location) == ("information", "$.items[1].flag")
