"""The ``bundle`` step: a Bundle of every resource made so far, a chosen type first, each
entry with a urn:uuid fullUrl and references inside the Bundle rewritten to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.formats import FORMATS
from adapter.mapping.loader import MappingSet, load_mapping_set
from adapter.xmlsafe import parse_xml
from tests.fhir_checks import validate_r4
from tests.unit.mapping_support import context, errors, of_type, write

DOC = """<?xml version="1.0" encoding="UTF-8"?>
<文书 编号="WS-1" 时间="20261120083000">
  <患者 号="P1">张三</患者>
  <诊断>I10</诊断>
  <诊断>E11.9</诊断>
</文书>
"""

MESSAGE = """\
version: 1
kind: message
format: xml
match: {root: 文书}
produce:
  - resource: patient
    bind: patient
  - each: =诊断
    do:
      - resource: condition
        collect: conditions
  - resource: composition
  - bundle: document
    first: Composition
"""

FILES = {
    "_shared/xml/resources/patient.yaml": """\
        version: 1
        kind: resource
        resourceType: Patient
        id_from: [[=患者/@号]]
        body:
          name: [{text: =患者}]
        """,
    "_shared/xml/resources/condition.yaml": """\
        version: 1
        kind: resource
        resourceType: Condition
        id_from: [[=/文书/@编号, =.]]
        body:
          code: {text: =.}
          subject: =ref(@patient)
        """,
    "_shared/xml/resources/composition.yaml": """\
        version: 1
        kind: resource
        resourceType: Composition
        id_from: [[=./@编号]]
        body:
          status: final
          type: {text: 文书}
          subject: =ref(@patient)
          date: =dtm_to_datetime(./@时间)
          author: [{display: 医生}]
          title: 文书
          section:
            - title: 诊断
              entry: =refs(@conditions)
        """,
    "_shared/xml/resources/document.yaml": """\
        version: 1
        kind: resource
        resourceType: Bundle
        id_from: [[=./@编号]]
        body:
          type: document
          identifier: {system: "urn:example:doc", value: =./@编号}
          timestamp: =dtm_to_instant(./@时间)
        """,
}


def _set(tmp_path: Path, message: str = MESSAGE, **extra: str) -> MappingSet:
    files = {**FILES, "_shared/xml/messages/doc.yaml": message, **extra}
    return load_mapping_set(write(tmp_path, files), "_shared")


def test_bundle_lists_every_resource_composition_first(tmp_path: Path) -> None:
    result = FORMATS["xml"].translate(_set(tmp_path), parse_xml(DOC.encode()).root, context())
    assert not errors(result.issues), result.issues
    [bundle] = of_type(result, "Bundle")
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Composition", "Patient", "Condition", "Condition"]
    others = [r for r in result.resources if r["resourceType"] != "Bundle"]
    assert {e["fullUrl"] for e in bundle["entry"]} == {f"urn:uuid:{r['id']}" for r in others}
    assert bundle["identifier"] == {"system": "urn:example:doc", "value": "WS-1"}
    assert bundle["timestamp"] == "2026-11-20T08:30:00+08:00"
    assert validate_r4(bundle) == []


def test_references_inside_the_bundle_point_to_full_urls_stored_ones_stay(tmp_path: Path) -> None:
    result = FORMATS["xml"].translate(_set(tmp_path), parse_xml(DOC.encode()).root, context())
    [patient] = of_type(result, "Patient")
    [composition] = of_type(result, "Composition")
    assert composition["subject"] == {"reference": f"Patient/{patient['id']}"}
    [bundle] = of_type(result, "Bundle")
    inside = bundle["entry"][0]["resource"]
    assert inside["subject"] == {"reference": f"urn:uuid:{patient['id']}"}
    assert all(ref["reference"].startswith("urn:uuid:") for ref in inside["section"][0]["entry"])


def test_bundle_without_the_first_type_is_an_error(tmp_path: Path) -> None:
    message = MESSAGE.replace("  - resource: composition\n", "")
    result = FORMATS["xml"].translate(
        _set(tmp_path, message), parse_xml(DOC.encode()).root, context()
    )
    assert not of_type(result, "Bundle")
    assert any("needs exactly one Composition" in i.diagnostics for i in errors(result.issues))


def test_bundle_step_must_name_a_bundle_template(tmp_path: Path) -> None:
    message = MESSAGE.replace("bundle: document", "bundle: patient")
    with pytest.raises(MappingDefinitionError, match="needs a Bundle template"):
        _set(tmp_path, message)


def test_bundle_step_unknown_key_is_a_load_error(tmp_path: Path) -> None:
    message = MESSAGE.replace("first: Composition", "firts: Composition")
    with pytest.raises(MappingDefinitionError):
        _set(tmp_path, message)


def test_xhtml_escapes_text_and_keeps_lines() -> None:
    from adapter.mapping.functions import FUNCTIONS
    from adapter.mapping.functions.narrative import xhtml

    assert FUNCTIONS["xhtml"] is xhtml
    div = xhtml(None, "血压 <140/90 & 心率正常\n\n 第二行 ")  # type: ignore[arg-type]
    assert div == (
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>血压 &lt;140/90 &amp; '
        "心率正常</p><p>第二行</p></div>"
    )
    assert xhtml(None, "  ") is None  # type: ignore[arg-type]
