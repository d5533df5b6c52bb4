"""XML sources (CDA included): XPath paths with namespaces, each over elements, located
values, the unread report, match selection between document kinds, load errors with file
and line, and hostile documents quarantined by the pipeline."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.errors import MappingDefinitionError, MappingError
from adapter.mapping.formats import FORMATS
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.mapping.translation import Translation
from adapter.pipeline import Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.xmlsafe import parse_xml
from tests.unit.mapping_support import context, errors, of_type, write

NATIONAL_ID = "110101199003078515"

LAB_CDA = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="CN"/>
  <templateId root="2.16.156.10011.2.1.1.27"/>
  <id root="2.16.156.10011.1.33" extension="RPT-001"/>
  <code code="C0007" codeSystem="2.16.156.10011.2.4"/>
  <title>检验报告</title>
  <effectiveTime value="20261120083000"/>
  <recordTarget typeCode="RCT">
    <patientRole classCode="PAT">
      <id root="2.16.156.10011.1.3" extension="{NATIONAL_ID}"/>
      <id root="2.16.156.10011.1.12" extension="ZY-7788"/>
      <patient classCode="PSN" determinerCode="INSTANCE">
        <name>张三</name>
        <administrativeGenderCode code="1" codeSystem="2.16.156.10011.2.3.3.4"/>
        <birthTime value="19900307"/>
      </patient>
    </patientRole>
  </recordTarget>
  <component>
    <structuredBody>
      <component>
        <section>
          <code code="30954-2" codeSystem="2.16.840.1.113883.6.1"/>
          <entry>
            <observation classCode="OBS" moodCode="EVN">
              <code code="GLU" displayName="葡萄糖"/>
              <value xsi:type="PQ" value="5.6" unit="mmol/L"/>
            </observation>
          </entry>
          <entry>
            <observation classCode="OBS" moodCode="EVN">
              <code code="K" displayName="钾"/>
              <value xsi:type="PQ" value="4.10" unit="mmol/L"/>
              <interpretationCode code="N"/>
            </observation>
          </entry>
        </section>
      </component>
    </structuredBody>
  </component>
</ClinicalDocument>
"""

LAB_MESSAGE = """\
version: 1
kind: message
format: xml
namespaces:
  cda: urn:hl7-org:v3
match:
  root: cda:ClinicalDocument
  xpath: "cda:templateId/@root = '2.16.156.10011.2.1.1.27'"
ignore:
  - //@classCode
  - //@moodCode
  - //@typeCode
  - //@determinerCode
  - //@xsi:type
  - //@codeSystem
  - cda:realmCode
  - cda:templateId
produce:
  - resource: patient
    bind: patient
  - each: =cda:component/cda:structuredBody/cda:component/cda:section/cda:entry/cda:observation
    do:
      - resource: observation
"""

PATIENT = """\
version: 1
kind: resource
resourceType: Patient
id_from:
  - [national-id, "=cda:recordTarget/cda:patientRole/cda:id[@root='2.16.156.10011.1.3']/@extension"]
body:
  identifier:
    - system: urn:oid:2.16.156.10011.1.3
      value: "=cda:recordTarget/cda:patientRole/cda:id[@root='2.16.156.10011.1.3']/@extension"
  name:
    - text: =cda:recordTarget/cda:patientRole/cda:patient/cda:name
  gender: =map('gender', .//cda:administrativeGenderCode/@code)
  birthDate: =dtm_to_date(cda:recordTarget/cda:patientRole/cda:patient/cda:birthTime/@value)
"""

OBSERVATION = """\
version: 1
kind: resource
resourceType: Observation
id_from:
  - [=/cda:ClinicalDocument/cda:id/@extension, =cda:code/@code]
body:
  status: final
  code:
    coding:
      - system: =facility_system('lab-item')
        code: =cda:code/@code
        display: =cda:code/@displayName
  subject: =ref(@patient)
  effectiveDateTime: =dtm_to_datetime(/cda:ClinicalDocument/cda:effectiveTime/@value)
  valueQuantity:
    value: =text_to_decimal(cda:value/@value)
    unit: =cda:value/@unit
"""

GENDER = """\
version: 1
kind: concept-map
map: {"1": male, "2": female}
unmapped: {action: keep}
"""


def lab_root(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    return write(
        tmp_path / "mappings",
        {
            "_shared/xml/messages/lab-report.yaml": LAB_MESSAGE,
            "_shared/xml/resources/patient.yaml": PATIENT,
            "_shared/xml/resources/observation.yaml": OBSERVATION,
            "_shared/concept-maps/gender.yaml": GENDER,
            **(extra or {}),
        },
    )


def run(mappings: MappingSet, text: str) -> Translation:
    return FORMATS["xml"].translate(mappings, parse_xml(text.encode("utf-8")).root, context())


@pytest.fixture
def lab(tmp_path: Path) -> MappingSet:
    return load_mapping_set(lab_root(tmp_path), "_shared")


def test_cda_becomes_a_patient_and_observations(lab: MappingSet) -> None:
    translation = run(lab, LAB_CDA)

    assert errors(translation.issues) == []
    [patient] = of_type(translation, "Patient")
    assert patient["identifier"] == [{"system": "urn:oid:2.16.156.10011.1.3", "value": NATIONAL_ID}]
    assert patient["name"] == [{"text": "张三"}]
    assert patient["gender"] == "male"
    assert patient["birthDate"] == "1990-03-07"
    observations = of_type(translation, "Observation")
    assert [o["code"]["coding"][0]["code"] for o in observations] == ["GLU", "K"]
    assert [o["code"]["coding"][0]["display"] for o in observations] == ["葡萄糖", "钾"]
    # relative paths start at each observation; absolute ones at the document
    assert [o["valueQuantity"] for o in observations] == [
        {"value": 5.6, "unit": "mmol/L"},
        {"value": 4.1, "unit": "mmol/L"},
    ]
    assert {o["effectiveDateTime"] for o in observations} == {"2026-11-20T08:30:00+08:00"}
    assert {o["subject"]["reference"] for o in observations} == {f"Patient/{patient['id']}"}
    assert translation.mapping is not None and translation.mapping.endswith("lab-report.yaml@v1")


def test_unread_values_are_listed_with_xpath_locations(lab: MappingSet) -> None:
    translation = run(lab, LAB_CDA)

    assert set(translation.unread) == {
        "/ClinicalDocument/id[1]/@root",  # the extension was read, not the root
        "/ClinicalDocument/code[1]",  # nothing inside was read: listed whole
        "/ClinicalDocument/title[1]",
        "/ClinicalDocument/recordTarget[1]/patientRole[1]/id[2]",  # the inpatient number
        "/ClinicalDocument/component[1]/structuredBody[1]/component[1]/section[1]/code[1]",
        "/ClinicalDocument/component[1]/structuredBody[1]/component[1]/section[1]/entry[2]"
        "/observation[1]/interpretationCode[1]",
    }
    # the root of the national ID was tested by the path's predicate: it counts as read
    assert not any("patientRole[1]/id[1]" in where for where in translation.unread)
    unread_issues = [i for i in translation.issues if "not read" in i.diagnostics]
    assert len(unread_issues) == len(translation.unread)
    # the title's text is content (a warning); identifiers and codes are structure
    warned = {i.location for i in unread_issues if i.severity == "warning"}
    assert warned == {"/ClinicalDocument/title[1]"}


def test_ignore_paths_silence_the_unread_report(tmp_path: Path) -> None:
    extra = [
        "cda:id/@root",
        "cda:code",
        "cda:title",
        "cda:recordTarget/cda:patientRole/cda:id[2]",
        "//cda:section/cda:code",
        "//cda:interpretationCode",
    ]
    message = LAB_MESSAGE.replace(
        "  - cda:templateId\n", "".join(f"  - {entry}\n" for entry in ["cda:templateId", *extra])
    )
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/messages/lab-report.yaml": message}), "_shared"
    )
    assert run(mappings, LAB_CDA).unread == []


def test_element_text_is_normalised_and_read_with_everything_inside(tmp_path: Path) -> None:
    root = write(
        tmp_path / "m",
        {
            "_shared/xml/messages/note.yaml": """\
            version: 1
            kind: message
            format: xml
            match: {root: note}
            produce: [{resource: basic}]
            """,
            "_shared/xml/resources/basic.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from: [[=./@id]]
            body:
              code: {text: =body}
              extension:
                - url: https://example.cn/text-node
                  valueString: =title/text()
            """,
        },
    )
    translation = FORMATS["xml"].translate(
        load_mapping_set(root, "_shared"),
        parse_xml(
            "<note id='n1'><title>A</title><body>\n  第一行\n  <b>加粗</b>  第二行 </body>"
            "</note>".encode()
        ).root,
        context(),
    )
    [basic] = translation.resources
    assert basic["code"] == {"text": "第一行 加粗 第二行"}
    assert basic["extension"][0]["valueString"] == "A"
    assert translation.unread == []  # <b> was read with its parent


def test_vendor_xml_without_namespace_with_chinese_names_in_gbk(tmp_path: Path) -> None:
    root = write(
        tmp_path / "m",
        {
            "_shared/xml/messages/vendor.yaml": """\
            version: 1
            kind: message
            format: xml
            match: {root: 检验报告}
            produce:
              - each: =检验结果/项目
                do: [{resource: item}]
            """,
            "_shared/xml/resources/item.yaml": """\
            version: 1
            kind: resource
            resourceType: Observation
            id_from: [[=/检验报告/报告单号, =./@代码]]
            body:
              status: final
              code: {text: =名称}
              valueString: =结果
            """,
        },
    )
    document = (
        '<?xml version="1.0" encoding="GBK"?>\n<检验报告><报告单号>R9</报告单号>'
        '<检验结果><项目 代码="WBC"><名称>白细胞</名称><结果>6.1</结果></项目>'
        '<项目 代码="RBC"><名称>红细胞</名称><结果>4.5</结果><备注>复查</备注></项目>'
        "</检验结果></检验报告>"
    ).encode("gbk")
    translation = FORMATS["xml"].translate(
        load_mapping_set(root, "_shared"), parse_xml(document).root, context()
    )
    assert [(r["code"]["text"], r["valueString"]) for r in translation.resources] == [
        ("白细胞", "6.1"),
        ("红细胞", "4.5"),
    ]
    assert translation.unread == ["/检验报告/检验结果[1]/项目[2]/备注[1]"]


def test_each_in_a_template_iterates_elements_with_relative_paths(tmp_path: Path) -> None:
    patient = PATIENT.replace(
        "body:\n",
        textwrap.dedent("""\
        body:
          telecom:
            - each: =cda:recordTarget/cda:patientRole/cda:telecom
              as: t
              if: =exists(./@value)
              emit:
                system: phone
                value: =./@value
                use: =first(when(eq(./@use, 'MC'), 'mobile'), 'home')
        """),
    )
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/resources/patient.yaml": patient}), "_shared"
    )
    document = LAB_CDA.replace(
        '<id root="2.16.156.10011.1.12" extension="ZY-7788"/>',
        '<telecom use="MC" value="tel:13800000000"/><telecom value=""/>'
        '<telecom use="H" value="tel:0731-1234567"/>',
    )
    [patient_out] = of_type(run(mappings, document), "Patient")
    assert patient_out["telecom"] == [
        {"system": "phone", "value": "tel:13800000000", "use": "mobile"},
        {"system": "phone", "value": "tel:0731-1234567", "use": "home"},
    ]


def test_value_errors_name_the_xpath_location(lab: MappingSet) -> None:
    document = LAB_CDA.replace('value="4.10"', 'value="四点一"')
    translation = run(lab, document)
    [error] = errors(translation.issues)
    assert error.location == (
        "/ClinicalDocument/component[1]/structuredBody[1]/component[1]"
        "/section[1]/entry[2]/observation[1]/value[1]/@value"
    )
    assert [o["code"]["coding"][0]["code"] for o in of_type(translation, "Observation")] == ["GLU"]


# -- choosing the message mapping --------------------------------------------------------------

DISCHARGE_MESSAGE = """\
version: 1
kind: message
format: xml
match:
  root: "{urn:hl7-org:v3}ClinicalDocument"
  xpath: "cda:templateId/@root = '2.16.156.10011.2.1.1.73'"
ignore: ["/*"]
produce:
  - resource: patient
"""


def test_match_selects_the_mapping_of_each_document_kind(tmp_path: Path) -> None:
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/messages/discharge-summary.yaml": DISCHARGE_MESSAGE}),
        "_shared",
    )
    lab = run(mappings, LAB_CDA)
    assert lab.mapping is not None and lab.mapping.endswith("lab-report.yaml@v1")
    assert len(lab.resources) == 3
    discharge = run(mappings, LAB_CDA.replace("2.16.156.10011.2.1.1.27", "2.16.156.10011.2.1.1.73"))
    assert discharge.mapping is not None and discharge.mapping.endswith("discharge-summary.yaml@v1")
    assert [r["resourceType"] for r in discharge.resources] == ["Patient"]
    assert discharge.unread == []


def test_a_document_no_mapping_matches_is_an_error(lab: MappingSet) -> None:
    translation = run(lab, LAB_CDA.replace("2.16.156.10011.2.1.1.27", "9.9.9"))
    [error] = translation.issues
    assert error.code == "not-supported" and error.location == "/ClinicalDocument"
    assert (
        "lab-report" in error.diagnostics and "root element ClinicalDocument" in error.diagnostics
    )
    assert translation.resources == []
    other_root = run(
        lab, "<ClinicalDocument><templateId root='2.16.156.10011.2.1.1.27'/></ClinicalDocument>"
    )  # right name, no namespace
    assert other_root.issues[0].code == "not-supported"


def test_a_document_two_mappings_match_is_an_error(tmp_path: Path) -> None:
    mappings = load_mapping_set(
        lab_root(
            tmp_path,
            {
                "_shared/xml/messages/any-cda.yaml": "version: 1\nkind: message\nformat: xml\n"
                "match: {root: ClinicalDocument}\n"
                "produce: [{resource: patient}]\n"
            },
        ),
        "_shared",
    )
    [error] = run(mappings, LAB_CDA).issues
    assert error.code == "multiple-matches"
    assert "any-cda" in error.diagnostics and "lab-report" in error.diagnostics


def test_a_system_folder_overrides_a_shared_xml_template(tmp_path: Path) -> None:
    root = lab_root(
        tmp_path,
        {
            "vendor/xml/resources/patient.yaml": """\
        version: 1
        extends: _shared
        kind: resource
        body:
          name:
            - text: =concat('患者 ', cda:recordTarget/cda:patientRole/cda:patient/cda:name)
        """
        },
    )
    [patient] = of_type(run(load_mapping_set(root, "vendor"), LAB_CDA), "Patient")
    assert patient["name"] == [{"text": "患者 张三"}]
    assert patient["gender"] == "male"  # the rest of the shared template stays


# -- load errors ---------------------------------------------------------------------------------


def load_error(tmp_path: Path, files: dict[str, str]) -> MappingDefinitionError:
    with pytest.raises(MappingDefinitionError) as info:
        load_mapping_set(lab_root(tmp_path, files), "_shared")
    return info.value


def _with_line(template: str, old: str, new: str) -> str:
    assert old in template
    return template.replace(old, new)


def test_bad_xpath_names_file_and_line(tmp_path: Path) -> None:
    observation = _with_line(
        OBSERVATION, "unit: =cda:value/@unit", "unit: =cda:value[@unit='x'/@unit"
    )
    error = load_error(tmp_path, {"_shared/xml/resources/observation.yaml": observation})
    assert error.file.endswith("observation.yaml") and error.line == 17
    assert "XPath" in error.message or "expression" in error.message


def test_undeclared_prefix_is_a_load_error(tmp_path: Path) -> None:
    observation = _with_line(OBSERVATION, "unit: =cda:value/@unit", "unit: =v3:value/@unit")
    error = load_error(tmp_path, {"_shared/xml/resources/observation.yaml": observation})
    assert "'v3' is not declared" in error.message and error.line == 17
    # ... also when it only appears inside a predicate
    observation = _with_line(OBSERVATION, "unit: =cda:value/@unit", "unit: =cda:value[v3:x]/@unit")
    assert (
        "'v3'"
        in load_error(tmp_path, {"_shared/xml/resources/observation.yaml": observation}).message
    )


def test_attribute_written_as_a_variable_is_a_load_error(tmp_path: Path) -> None:
    observation = _with_line(OBSERVATION, "unit: =cda:value/@unit", "unit: =@unit")
    error = load_error(tmp_path, {"_shared/xml/resources/observation.yaml": observation})
    assert "./@unit" in error.message and error.line == 17
    observation = _with_line(OBSERVATION, "unit: =cda:value/@unit", "unit: =@xsi:type")
    assert (
        "./@xsi:type"
        in load_error(tmp_path, {"_shared/xml/resources/observation.yaml": observation}).message
    )


def test_namespace_prefix_bound_twice_is_a_load_error(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        {
            "_shared/xml/messages/other.yaml": DISCHARGE_MESSAGE.replace(
                "match:", "namespaces: {cda: 'urn:example:not-cda'}\nmatch:"
            )
        },
    )
    assert "'cda'" in error.message and error.file.endswith("other.yaml")


def test_each_step_needs_a_path_expression(tmp_path: Path) -> None:
    message = LAB_MESSAGE.replace("each: =cda:component", "each: cda:component")
    error = load_error(tmp_path, {"_shared/xml/messages/lab-report.yaml": message})
    assert "each: =cda:component" in error.message and error.line == 21


def test_bad_match_and_ignore_paths_are_load_errors(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        {
            "_shared/xml/messages/lab-report.yaml": LAB_MESSAGE.replace(
                "'2.16.156.10011.2.1.1.27'\"", "'2.16.156.10011.2.1.1.27'] \""
            )
        },
    )
    assert error.message.startswith(f"{error.file}:8: match:")
    error = load_error(
        tmp_path,
        {
            "_shared/xml/messages/lab-report.yaml": LAB_MESSAGE.replace(
                "  - cda:realmCode", "  - cda:realmCode["
            )
        },
    )
    assert "ignore" in error.message and error.line == 16
    error = load_error(
        tmp_path,
        {
            "_shared/xml/messages/lab-report.yaml": LAB_MESSAGE.replace(
                "  xpath:", "  message_type: [ORU^R01]\n  xpath:"
            )
        },
    )
    assert "message_type" in error.message


def test_an_xpath_failing_at_run_time_is_a_located_mapping_error(tmp_path: Path) -> None:
    # an unknown function inside a predicate is only met when the predicate is evaluated
    observation = _with_line(
        OBSERVATION, "unit: =cda:value/@unit", "unit: =cda:value[no-such-function()]/@unit"
    )
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/resources/observation.yaml": observation}), "_shared"
    )
    with pytest.raises(MappingError) as info:
        run(mappings, LAB_CDA)
    assert "no-such-function" in info.value.message
    assert (info.value.location or "").endswith("/entry[1]/observation[1]")


# -- hostile input through the pipeline ----------------------------------------------------------

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
      - id: test-cda
        format: cda
        mapping: _shared
"""


@pytest.fixture
def pipeline(tmp_path: Path, session_factory: sessionmaker[Session]) -> Pipeline:
    config = tmp_path / "consortium.yaml"
    config.write_text(CONSORTIUM, encoding="utf-8")
    return Pipeline(
        load_consortium(config),
        session_factory,
        mappings_dir=lab_root(tmp_path),
        max_bytes=4000,
        default_timezone="Asia/Shanghai",
    )


HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "billion-laughs": (
        b'<?xml version="1.0"?>\n<!DOCTYPE l [<!ENTITY a "aaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]>\n<l>&b;</l>',
        "structure",
        "line 2",
    ),
    "xxe-file": (
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        "structure",
        "line 1",
    ),
    "xxe-http": (b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>', "structure", "line 1"),
    "oversize": (b"<r>" + b"x" * 5000 + b"</r>", "too-long", "body"),
    "malformed": (b"<r>\n<a></r>", "structure", "line 2"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_documents_are_quarantined_with_an_outcome(name: str, pipeline: Pipeline) -> None:
    raw, code, where = HOSTILE[name]
    result = pipeline.ingest(raw, Receipt("test-cda", "cli", content_type="application/xml"))
    assert result.status == "quarantined"
    [issue] = result.issues
    assert issue.code == code and (issue.location or "").startswith(where)
    assert result.resources == []


def test_a_cda_document_is_stored_with_its_unread_report(pipeline: Pipeline) -> None:
    result = pipeline.ingest(
        LAB_CDA.encode(), Receipt("test-cda", "cli", content_type="application/xml")
    )
    # the title's text is read by no rule: content left behind, so a warning
    assert result.status == "processed-with-warnings", [i.as_dict() for i in result.issues]
    assert sorted(r.split("/")[0] for r in result.resources) == [
        "Observation",
        "Observation",
        "Patient",
    ]
    informational: list[dict[str, Any]] = [i.as_dict() for i in result.issues]
    assert any(
        i["location"] == "/ClinicalDocument/title[1]" and i["severity"] == "warning"
        for i in informational
    )


# -- clinical content left unread: a warning, structure an information ----------------------

NARRATIVE_AND_ENTRY = (
    "<component>\n"
    "      <section>\n"
    '        <code code="10164-2"/>\n'
    "        <text>患者3天前无明显诱因出现发热</text>\n"
    "        <entry>\n"
    "          <observation>\n"
    '            <templateId root="2.16.156.10011.2.1.1.99"/>\n'
    '            <code code="HBSAG" displayName="乙肝表面抗原"/>\n'
    '            <value xsi:type="CD" code="P" displayName="阳性"/>\n'
    "          </observation>\n"
    "        </entry>\n"
    "      </section>\n"
    "    </component>\n"
    "  </structuredBody>"
)


def test_unread_section_text_and_entry_values_are_warnings(lab: MappingSet) -> None:
    document = LAB_CDA.replace("</structuredBody>", NARRATIVE_AND_ENTRY, 1)
    translation = run(lab, document)
    section = "/ClinicalDocument/component[1]/structuredBody[1]/component[2]/section[1]"
    found = {i.location: i.severity for i in translation.issues if "not read" in i.diagnostics}
    value = f"{section}/entry[1]/observation[1]/value[1]"
    assert {k: v for k, v in found.items() if k.startswith(section)} == {
        f"{section}/code[1]": "information",  # a code: structure
        f"{section}/text[1]": "warning",  # the section's narrative
        f"{section}/entry[1]/observation[1]/templateId[1]": "information",
        value: "warning",  # a coded value (code, displayName): clinical
    }


def test_a_mapping_s_clinical_replaces_the_xml_default(tmp_path: Path) -> None:
    message = LAB_MESSAGE.replace("produce:", "clinical: [interpretationCode]\nproduce:")
    lab = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/messages/lab-report.yaml": message}), "_shared"
    )
    translation = run(lab, LAB_CDA)
    found = {i.location: i.severity for i in translation.issues if "not read" in i.diagnostics}
    assert found["/ClinicalDocument/title[1]"] == "information"  # text() not named
    assert (
        found[
            "/ClinicalDocument/component[1]/structuredBody[1]/component[1]/section[1]/entry[2]"
            "/observation[1]/interpretationCode[1]"
        ]
        == "warning"
    )


def test_a_bad_xml_clinical_entry_is_a_load_error(tmp_path: Path) -> None:
    message = LAB_MESSAGE.replace("produce:", "clinical: ['@value']\nproduce:")
    with pytest.raises(MappingDefinitionError, match="neither an element or attribute name"):
        load_mapping_set(
            lab_root(tmp_path, {"_shared/xml/messages/lab-report.yaml": message}), "_shared"
        )


ENVELOPE_MESSAGE = """\
version: 1
kind: message
format: xml
match:
  root: envelope
embedded:
  xpath: "document/@content"
  encoding: base64
produce: []
"""


def test_an_embedded_document_is_translated_with_its_own_mapping(tmp_path: Path) -> None:
    """``embedded:``: the envelope carries the document base64; the carried document is
    translated by the mapping its root selects, the same resources as sent alone, and what
    the envelope holds besides is reported like any unread content."""
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/messages/envelope.yaml": ENVELOPE_MESSAGE}), "_shared"
    )
    content = base64.b64encode(LAB_CDA.encode("utf-8")).decode("ascii")
    wrapped = run(mappings, f'<envelope><document content="{content}"/><note>x</note></envelope>')
    alone = run(mappings, LAB_CDA)
    assert wrapped.resources == alone.resources and len(alone.resources) == 3
    assert wrapped.mapping is not None and "envelope.yaml@v1 > " in wrapped.mapping
    assert "lab-report.yaml@v1" in wrapped.mapping
    assert [i.location for i in wrapped.issues if "not read" in i.diagnostics] == [
        *(
            f"/envelope/document[1]/@content#{i.location}"
            for i in alone.issues
            if "not read" in i.diagnostics
        ),
        "/envelope/note[1]",
    ]


def test_an_envelope_inside_an_envelope_is_refused(tmp_path: Path) -> None:
    mappings = load_mapping_set(
        lab_root(tmp_path, {"_shared/xml/messages/envelope.yaml": ENVELOPE_MESSAGE}), "_shared"
    )
    inner = base64.b64encode(b'<envelope><document content=""/></envelope>').decode("ascii")
    outcome = run(mappings, f'<envelope><document content="{inner}"/></envelope>')
    assert not outcome.resources
    assert "one level only" in outcome.issues[0].diagnostics


def test_an_unknown_embedded_encoding_is_a_load_error(tmp_path: Path) -> None:
    bad = ENVELOPE_MESSAGE.replace("encoding: base64", "encoding: hex")
    error = load_error(tmp_path, {"_shared/xml/messages/envelope.yaml": bad})
    assert error.file.endswith("envelope.yaml") and "encoding" in error.message
