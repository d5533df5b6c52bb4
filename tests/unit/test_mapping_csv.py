"""CSV sources: one slip per row (each row its own item; a bad row is reported with its number
and does not sink the file), column paths, unread columns, match by header, reading
(delimiters, encodings, spreadsheet row numbers), and the pipeline's statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.errors import MappingDefinitionError, ParseError
from adapter.mapping.csv_rows import compile_path, read_csv
from adapter.mapping.formats import FORMATS
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.mapping.translation import Translation
from adapter.pipeline import Pipeline
from adapter.pipeline.checks import check_resources
from adapter.pipeline.receipt import Receipt
from tests.unit.mapping_support import context, errors, of_type, write

ZHANG = "110101199003078515"
LI = "440304198512010027"

MESSAGE = """\
version: 1
kind: message
format: csv
match:
  columns: [身份证号, 姓名, 项目代码, 结果]
ignore: [备注]
produce:
  - resource: patient
    bind: patient
  - resource: observation
"""

PATIENT = """\
version: 1
kind: resource
resourceType: Patient
on_conflict:
  policy: update-given
  accumulate: [identifier]
  in_message: first-wins
id_from:
  - [national-id, =身份证号]
body:
  identifier:
    - system: urn:oid:2.16.156.10011.1.3
      value: =national_id(身份证号)
  name:
    - text: =姓名
  gender: =map('gender', 性别)
"""

OBSERVATION = """\
version: 1
kind: resource
resourceType: Observation
id_from:
  - [=@facility.id, =报告单号, =项目代码]
body:
  status: final
  code:
    coding:
      - system: =facility_system('lab-item')
        code: =项目代码
  subject: =ref(@patient)
  valueQuantity:
    value: =text_to_decimal(结果)
    unit: =[单位 (UCUM)]
"""

GENDER = """\
version: 1
kind: concept-map
map: {"1": male, "2": female}
unmapped: {action: keep}
"""

HEADER = "报告单号,身份证号,姓名,性别,项目代码,结果,单位 (UCUM),备注,医生"
TABLE = (
    "\n".join(
        [
            HEADER,
            f"R1,{ZHANG},张三,1,GLU,5.6,mmol/L,,王医生",
            f"R1,{ZHANG},张三,1,K,abc,mmol/L,复查,",
            "",
            f"R2,{LI},李四,2,GLU,4.9,mmol/L,,",
        ]
    )
    + "\n"
)


def csv_root(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    return write(
        tmp_path / "mappings",
        {
            "_shared/csv/messages/lab-results.yaml": MESSAGE,
            "_shared/csv/resources/patient.yaml": PATIENT,
            "_shared/csv/resources/observation.yaml": OBSERVATION,
            "_shared/concept-maps/gender.yaml": GENDER,
            **(extra or {}),
        },
    )


@pytest.fixture
def mappings(tmp_path: Path) -> MappingSet:
    return load_mapping_set(csv_root(tmp_path), "_shared")


def run(mappings: MappingSet, text: str) -> Translation:
    return FORMATS["csv"].translate(
        mappings, read_csv(text.encode()), context(), check=check_resources
    )


def test_each_row_is_its_own_item_and_a_bad_row_does_not_sink_the_file(
    mappings: MappingSet,
) -> None:
    translation = run(mappings, TABLE)

    patients = of_type(translation, "Patient")
    assert sorted(p["name"][0]["text"] for p in patients) == ["张三", "李四"]
    observations = of_type(translation, "Observation")
    assert [
        (o["code"]["coding"][0]["code"], o["valueQuantity"]["value"]) for o in observations
    ] == [("GLU", 5.6), ("GLU", 4.9)]
    by_patient = {p["id"]: p["name"][0]["text"] for p in patients}
    assert [by_patient[o["subject"]["reference"].split("/")[1]] for o in observations] == [
        "张三",
        "李四",
    ]
    # row 3 (the third line: the header is row 1) is listed, not imported, and not an error
    assert errors(translation.issues) == []
    [bad] = [i for i in translation.issues if "not imported" in i.diagnostics]
    assert bad.severity == "warning" and bad.location == "row 3, column 结果"
    assert bad.diagnostics.startswith("row 3 not imported: 'abc' is not a number")


def test_unread_columns_are_listed_once(mappings: MappingSet) -> None:
    translation = run(mappings, TABLE)
    assert translation.unread == ["column 医生"]  # 备注 is ignored on purpose
    [note] = [i for i in translation.issues if "not read" in i.diagnostics]
    # a filled column left behind is content lost: a warning (CSV's default clinical: ["*"])
    assert (note.severity, note.location) == ("warning", "column 医生")
    # a column empty in every row carries nothing: not listed
    assert run(mappings, TABLE.replace("王医生", "")).unread == []


def test_when_no_row_can_be_imported_the_errors_stay_errors(mappings: MappingSet) -> None:
    translation = run(
        mappings,
        "\n".join(
            [HEADER, f"R1,{ZHANG},张三,1,K,abc,mmol/L,,", f"R1,{ZHANG},张三,1,NA,x,mmol/L,,"]
        ),
    )
    assert translation.resources == []
    assert [(i.severity, i.location) for i in errors(translation.issues)] == [
        ("error", "row 2, column 结果"),
        ("error", "row 3, column 结果"),
    ]


def test_a_row_that_contradicts_an_earlier_row_is_not_imported(mappings: MappingSet) -> None:
    translation = run(
        mappings,
        "\n".join(
            [
                HEADER,
                f"R1,{ZHANG},张三,1,GLU,5.6,mmol/L,,",
                f"R1,{ZHANG},张三,1,GLU,7.0,mmol/L,,",  # the same result, another value
                f"R1,{ZHANG},张三丰,1,K,4.1,mmol/L,,",  # the same patient, another name: first wins
            ]
        ),
    )
    assert [o["valueQuantity"]["value"] for o in of_type(translation, "Observation")] == [5.6, 4.1]
    assert [p["name"][0]["text"] for p in of_type(translation, "Patient")] == ["张三"]
    [conflict] = [i for i in translation.issues if "not imported" in i.diagnostics]
    assert conflict.location == "row 3" and "also made by row 2" in conflict.diagnostics


def test_a_row_with_more_cells_than_the_header_is_a_bad_row(mappings: MappingSet) -> None:
    translation = run(mappings, TABLE.replace("王医生", "王医生,多余"))
    [bad] = [i for i in translation.issues if "row 2 not imported" in i.diagnostics]
    assert "the extra cells would be lost" in bad.diagnostics and bad.location == "row 2"
    assert len(of_type(translation, "Observation")) == 1


def test_a_checked_resource_error_makes_the_row_bad(mappings: MappingSet, tmp_path: Path) -> None:
    # a control character in a name passes the mapping but not the resource check
    translation = run(mappings, TABLE.replace("李四", "李\x01四"))
    [bad] = [i for i in translation.issues if "row 5 not imported" in i.diagnostics]
    assert bad.location == "row 5"
    assert [p["name"][0]["text"] for p in of_type(translation, "Patient")] == ["张三"]


def test_match_by_header_columns(tmp_path: Path) -> None:
    other = MESSAGE.replace(
        "columns: [身份证号, 姓名, 项目代码, 结果]", "columns: [转诊单号, 身份证号]"
    )
    mappings = load_mapping_set(
        csv_root(tmp_path, {"_shared/csv/messages/referrals.yaml": other}), "_shared"
    )
    assert run(mappings, TABLE).mapping.endswith("lab-results.yaml@v1")  # type: ignore[union-attr]
    [error] = run(mappings, "编号,姓名\n1,张三\n").issues
    assert error.code == "not-supported" and error.location == "row 1"
    assert "columns 编号, 姓名" in error.diagnostics and "转诊单号" in error.diagnostics


def test_header_only_file(mappings: MappingSet) -> None:
    translation = run(mappings, HEADER + "\n")
    assert translation.resources == [] and errors(translation.issues) == []
    assert translation.issues[0].diagnostics == "the file has a header and no rows"


# -- reading --------------------------------------------------------------------------------------


def test_delimiters_quotes_and_row_numbers() -> None:
    table = read_csv('a;b\n"x;1";"多行\n文本"\n\n3;4\n'.encode())
    assert table.delimiter == ";" and table.header == ["a", "b"]
    assert [(r.number, r.cells) for r in table.rows] == [
        (2, {"a": "x;1", "b": "多行\n文本"}),
        (4, {"a": "3", "b": "4"}),
    ]


def test_excel_unicode_text_and_gbk_exports() -> None:
    utf16 = read_csv("姓名\t结果\r\n张三\t5.6\r\n".encode("utf-16"))
    assert utf16.delimiter == "\t" and utf16.encoding == "utf-16"
    assert utf16.rows[0].cells == {"姓名": "张三", "结果": "5.6"}
    gbk = read_csv("姓名,结果\n张三,5.6\n".encode("gbk"))
    assert gbk.encoding == "gb18030" and gbk.rows[0].cells["姓名"] == "张三"
    assert gbk.issues == []  # CSV cannot declare an encoding: GB18030 is normal, not a warning
    bom = read_csv(b"\xef\xbb\xbf" + "姓名,结果\n张三,5.6\n".encode())
    assert bom.header == ["姓名", "结果"]


def test_unreadable_tables_are_parse_errors() -> None:
    with pytest.raises(ParseError) as info:
        read_csv("姓名,结果,姓名\n张三,1,2\n".encode())
    assert info.value.location == "row 1, column 3"
    with pytest.raises(ParseError):
        read_csv(b" \n\n")
    with pytest.raises(ParseError) as info:
        read_csv(b'a,b\n1,"2\n')  # a quote never closed
    assert (info.value.location or "").startswith("row")


def test_column_paths() -> None:
    assert compile_path("姓名").name == "姓名"
    assert compile_path("[单位 (UCUM)]").name == "单位 (UCUM)"
    with pytest.raises(ValueError):
        compile_path("[]")


def test_a_column_reference_that_breaks_the_expression_names_its_line(tmp_path: Path) -> None:
    observation = OBSERVATION.replace("unit: =[单位 (UCUM)]", "unit: =单位 (UCUM)")
    with pytest.raises(MappingDefinitionError) as info:
        load_mapping_set(
            csv_root(tmp_path, {"_shared/csv/resources/observation.yaml": observation}), "_shared"
        )
    assert info.value.line == 15 and info.value.file.endswith("observation.yaml")


# -- through the pipeline -------------------------------------------------------------------------

CONSORTIUM = """\
version: 1
id: test-ygt
name: 测试医共体
timezone: Asia/Shanghai
facilities:
  - id: test-hospital
    name: 测试医院
    level: county
    namespace: https://example.cn/sid/test-hospital
    sources:
      - id: test-csv
        format: csv
        mapping: _shared
"""


@pytest.fixture
def pipeline(tmp_path: Path, session_factory: sessionmaker[Session]) -> Pipeline:
    config = tmp_path / "consortium.yaml"
    config.write_text(CONSORTIUM, encoding="utf-8")
    return Pipeline(
        load_consortium(config),
        session_factory,
        mappings_dir=csv_root(tmp_path),
        max_bytes=100_000,
        default_timezone="Asia/Shanghai",
    )


def test_a_file_with_a_bad_row_is_processed_with_warnings(pipeline: Pipeline) -> None:
    result = pipeline.ingest(
        TABLE.encode("gbk"), Receipt("test-csv", "cli", content_type="text/csv")
    )
    assert result.status == "processed-with-warnings"
    assert sorted(r.split("/")[0] for r in result.resources) == [
        "Observation",
        "Observation",
        "Patient",
        "Patient",
    ]
    assert any(
        i.location == "row 3, column 结果" and i.severity == "warning" for i in result.issues
    )


def test_a_file_whose_rows_are_all_bad_is_quarantined(pipeline: Pipeline) -> None:
    result = pipeline.ingest(
        f"{HEADER}\nR1,{ZHANG},张三,1,K,abc,mmol/L,,\n".encode(),
        Receipt("test-csv", "cli", content_type="text/csv"),
    )
    assert result.status == "quarantined" and result.resources == []
    assert [i.location for i in result.issues if i.severity == "error"] == ["row 2, column 结果"]


def test_a_mapping_s_clinical_names_the_columns_whose_loss_is_a_warning(tmp_path: Path) -> None:
    message = MESSAGE.replace("ignore: [备注]", "ignore: [备注]\nclinical: [结果]")
    mappings = load_mapping_set(
        csv_root(tmp_path, {"_shared/csv/messages/lab-results.yaml": message}), "_shared"
    )
    [note] = [i for i in run(mappings, TABLE).issues if "not read" in i.diagnostics]
    # the doctor's name is administrative for this source: an information
    assert (note.severity, note.location) == ("information", "column 医生")
