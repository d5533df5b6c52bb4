"""The engine: each / first_of / if, dropping of empty values, let, lazy functions, collect,
checks, skip, required elements, duplicates and deterministic ids."""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

from adapter.mapping.ids import deterministic_id
from tests.unit.mapping_support import (
    MESSAGE,
    errors,
    hl7,
    load,
    mapping_root,
    of_type,
    translate,
)

ORU = (
    "PID|1||P001^^^LAB^PI~P002^^^LAB^MR||张三",
    "NTE|1||patient note",
    "OBR|1||R1|CBC^血常规",
    "NTE|1||order note",
    "OBX|1|NM|WBC^白细胞||6.5|10^9/L|3.5-9.5|N|||F",
    "NTE|1||wbc note 1",
    "NTE|2||wbc note 2",
    "OBX|2|NM|HGB^血红蛋白||150|g/L|130-175|H~A|||F",
)


def thing(tmp_path: Path, body: str, *segments: str) -> list[dict]:
    root = mapping_root(tmp_path, body=body)
    translation = translate(load(root), hl7(*(segments or ORU)))
    assert not errors(translation.issues), translation.issues
    return of_type(translation, "Basic")


# -- each ---------------------------------------------------------------------------------------


def test_each_over_segments_of_the_scope(tmp_path: Path) -> None:
    """``each: NTE`` in an OBSERVATION sees only the notes after that OBX."""
    wbc, hgb = thing(
        tmp_path,
        """
        note:
          - each: NTE
            emit:
              text: =NTE-3
    """,
    )
    assert wbc["note"] == [{"text": "wbc note 1"}, {"text": "wbc note 2"}]
    assert "note" not in hgb


def test_each_over_field_repetitions_with_as_and_if(tmp_path: Path) -> None:
    wbc, hgb = thing(
        tmp_path,
        """
        flags:
          - each: =OBX-8
            as: flag
            if: =ne(@flag, 'N')
            emit:
              code: =@flag
        ids:
          - each: =PID-3
            as: cx
            emit:
              value: =@cx.1
              type: =@cx.5
    """,
    )
    assert "flags" not in wbc
    assert hgb["flags"] == [{"code": "H"}, {"code": "A"}]
    assert wbc["ids"] == [{"value": "P001", "type": "PI"}, {"value": "P002", "type": "MR"}]


def test_each_items_are_spliced_into_the_surrounding_list(tmp_path: Path) -> None:
    (wbc, _) = thing(
        tmp_path,
        """
        note:
          - text: first
          - each: NTE
            emit:
              text: =NTE-3
          - text: =OBX-3.2
    """,
    )
    assert [n["text"] for n in wbc["note"]] == ["first", "wbc note 1", "wbc note 2", "白细胞"]


def test_each_over_groups_in_steps(tmp_path: Path) -> None:
    """Two patients, three orders: one resource per OBSERVATION group, each reading its own
    OBR and PID through the enclosing groups."""
    made = thing(
        tmp_path,
        """
        patient: =PID-3.1
        order: =OBR-3
        item: =OBX-3.1
    """,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|A||1",
        "OBX|2|NM|B||2",
        "OBR|2||R2",
        "OBX|1|NM|C||3",
        "PID|2||P2",
        "OBR|1||R3",
        "OBX|1|NM|D||4",
    )
    assert [(t["patient"], t["order"], t["item"]) for t in made] == [
        ("P1", "R1", "A"),
        ("P1", "R1", "B"),
        ("P1", "R2", "C"),
        ("P2", "R3", "D"),
    ]


def test_each_step_if_holds_for_each_item(tmp_path: Path) -> None:
    """``if`` on an ``each`` step is read in each item's scope, as ``if`` in a template's
    ``each`` is: here the deleted result (OBX-11 D) is left out, the other one is made."""
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": MESSAGE.replace(
                "          - each: OBSERVATION\n",
                "          - each: OBSERVATION\n            if: =ne(OBX-11, 'D')\n",
            ),
        },
        body="item: =OBX-3.1",
    )
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1||||||D", "OBX|2|NM|B||2||||||F")
    )
    assert [t["item"] for t in of_type(translation, "Basic")] == ["B"]


# -- first_of, if, empty values ---------------------------------------------------------------


def test_first_of_takes_the_first_alternative_that_gives_something(tmp_path: Path) -> None:
    wbc, hgb = thing(
        tmp_path,
        """
        value:
          first_of:
            - if: =eq(OBX-3.1, 'HGB')
              kind: haemoglobin
              number: =OBX-5
            - text: =OBX-99
            - text: =OBX-3.2
    """,
    )
    assert wbc["value"] == {"text": "白细胞"}
    assert hgb["value"] == {"kind": "haemoglobin", "number": "150"}


def test_if_gates_a_dict(tmp_path: Path) -> None:
    wbc, hgb = thing(
        tmp_path,
        """
        high:
          if: =one_of(OBX-8, 'H', 'HH')
          code: H
          display: High
        codes:
          - if: =exists(OBX-7)
            text: literal only
    """,
    )
    assert "high" not in wbc
    assert hgb["high"] == {"code": "H", "display": "High"}  # literals kept: the gate decided
    assert wbc["codes"] == [{"text": "literal only"}]


def test_empty_values_are_dropped(tmp_path: Path) -> None:
    (wbc, _) = thing(
        tmp_path,
        """
        missing: =OBX-99
        blank: =trim('   ')
        empty_list: [=OBX-98, =OBX-97]
        nested:
          deeper:
            value: =OBX-96
        kept_false: =eq(OBX-3.1, 'nope')
        kept_zero: =0
        literal_text: 文字
    """,
    )
    assert {k: v for k, v in wbc.items() if k not in ("resourceType", "id")} == {
        "kept_false": False,
        "kept_zero": 0,
        "literal_text": "文字",
    }


def test_a_dynamic_dict_with_only_literals_left_is_dropped(tmp_path: Path) -> None:
    """An identifier whose value is absent is not made, even though its ``use`` and ``type``
    (literals, also nested ones) would remain."""
    (wbc, _) = thing(
        tmp_path,
        """
        identifier:
          - use: official
            type:
              coding:
                - system: http://terminology.hl7.org/CodeSystem/v2-0203
                  code: FILL
            value: =OBR-99
          - use: usual
            type:
              coding:
                - system: http://terminology.hl7.org/CodeSystem/v2-0203
                  code: PLAC
            value: =OBR-3
        category:
          - coding:
              - system: http://example.org/category
                code: lab
    """,
    )
    assert wbc["identifier"] == [
        {
            "use": "usual",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}
                ]
            },
            "value": "R1",
        }
    ]
    # a dict of literals only (nothing dynamic in it) is kept as written
    assert wbc["category"] == [
        {"coding": [{"system": "http://example.org/category", "code": "lab"}]}
    ]


# -- let ----------------------------------------------------------------------------------------


def test_let_keeps_source_positions(tmp_path: Path) -> None:
    """A let bound to a path is still the source position: a transform applied to it later
    names the field, not the let."""
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            let:
              result: =OBX-5
              picked: =first(OBX-99, OBX-5)
            id_from:
              - [=OBX-3.1]
            body:
              value: =text_to_decimal(@result)
              again: =text_to_decimal(@picked)
        """
        },
    )
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||阴性", "OBX|2|NM|B||1.5")
    )
    (error,) = errors(translation.issues)
    assert error.location == "OBX[1]-5"
    assert "阴性" in error.diagnostics
    assert [t["value"] for t in of_type(translation, "Basic")] == [1.5]


def test_let_of_each_keeps_items_with_positions(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            let:
              flags:
                each: =OBX-8
                as: f
                emit: =@f
            id_from:
              - [=OBX-3.1]
            body:
              flag: =map('flags', @flags.2)
        """,
            "_shared/concept-maps/flags.yaml": """\
            version: 1
            kind: concept-map
            map: {H: high}
            unmapped: {action: error}
        """,
        },
    )
    translation = translate(load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1|||H~Q"))
    (error,) = errors(translation.issues)
    assert error.location == "OBX[1]-8[2]"
    assert error.code == "code-invalid"


# -- lazy functions --------------------------------------------------------------------------


def test_a_branch_not_taken_never_reports(tmp_path: Path) -> None:
    (made,) = thing(
        tmp_path,
        """
        by_first: =first(OBX-3.1, text_to_decimal(OBX-5))
        by_when: =when(eq(OBX-2, 'NM'), text_to_decimal(OBX-5))
        by_all: =all(eq(OBX-2, 'NM'), text_to_decimal(OBX-5))
        by_any: =any(eq(OBX-2, 'ST'), text_to_decimal(OBX-5))
        dates: =when(exists(OBX-99), dtm_to_datetime(OBX-5))
    """,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|ST|A||阴性",
    )
    assert made["by_first"] == "A"
    assert made["by_all"] is False
    assert made["by_any"] is True
    assert "by_when" not in made and "dates" not in made


def test_a_branch_taken_does_report(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="value: =when(eq(OBX-2, 'ST'), text_to_decimal(OBX-5))")
    translation = translate(load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|ST|A||阴性"))
    assert [i.location for i in errors(translation.issues)] == ["OBX[1]-5"]


# -- collect ------------------------------------------------------------------------------------

COLLECTING = """\
version: 1
kind: message
format: hl7v2
match:
  message_type: [ORU^R01]
structure:
  - MSH!
  - group: PATIENT_RESULT
    repeat: true
    items:
      - PID!
      - group: ORDER
        repeat: true
        items:
          - OBR!
          - OBX*
ignore: [MSH]
produce:
  - each: PATIENT_RESULT
    do:
      - each: ORDER
        do:
          - each: OBX
            do:
              - resource: result
                collect: results
          - resource: specimen
            collect: specimens
          - resource: report
      - resource: summary
"""


def _collecting_root(tmp_path: Path) -> Path:
    def template(name: str, type_: str, key: str, body: str) -> str:
        return (
            f"version: 1\nkind: resource\nresourceType: {type_}\n"
            f"id_from:\n  - [{key}]\nbody:\n{body}"
        )

    return mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": COLLECTING,
            "_shared/hl7v2/resources/result.yaml": template(
                "result", "Observation", "=OBX-3", "  code:\n    text: =OBX-3\n"
            ),
            "_shared/hl7v2/resources/specimen.yaml": template(
                "specimen", "Specimen", "=OBR-3", "  note:\n    - text: =OBR-3\n"
            ),
            "_shared/hl7v2/resources/report.yaml": template(
                "report",
                "DiagnosticReport",
                "=OBR-3",
                "  result: =refs(@results)\n  specimen: =refs(@specimens)\n",
            ),
            "_shared/hl7v2/resources/summary.yaml": template(
                "summary",
                "List",
                "=PID-3",
                "  entry:\n    - each: =@results\n      as: r\n      emit:\n"
                "        item: =ref(@r)\n",
            ),
        },
    )


def test_collect_lists_belong_to_the_enclosing_group(tmp_path: Path) -> None:
    """Each order's report references its own results and its own specimen (collected
    directly in the order's steps), never those of an earlier order; a step after the
    loop sees everything collected inside it."""
    translation = translate(
        load(_collecting_root(tmp_path)),
        hl7(
            "PID|1||P1",
            "OBR|1||R1",
            "OBX|1|NM|A||1",
            "OBX|2|NM|B||2",
            "OBR|2||R2",
            "OBX|1|NM|C||3",
            "PID|2||P2",
            "OBR|1||R3",
            "OBX|1|NM|D||4",
        ),
    )
    assert not errors(translation.issues), translation.issues
    codes = {
        r["id"]: r.get("code", {}).get("text") or r.get("note", [{}])[0].get("text")
        for r in translation.resources
    }

    def names(refs: list[dict]) -> list[str]:
        return [codes[ref["reference"].split("/")[1]] for ref in refs]

    reports = of_type(translation, "DiagnosticReport")
    assert [(names(r["result"]), names(r["specimen"])) for r in reports] == [
        (["A", "B"], ["R1"]),
        (["C"], ["R2"]),
        (["D"], ["R3"]),
    ]
    summaries = of_type(translation, "List")
    assert [names([e["item"] for e in s["entry"]]) for s in summaries] == [["A", "B", "C"], ["D"]]


# -- checks, skip, required -------------------------------------------------------------------

CHECKED = """\
version: 1
kind: resource
resourceType: Basic
id_from:
  - [=OBR-3, =OBX-3.1]
checks:
  - if: =empty(OBX-11)
    at: =OBX-11
    severity: warning
    message: no result status
  - if: =eq(OBX-2, 'ED')
    severity: information
    message: an embedded document is not read
  - if: =eq(OBX-5, 'BAD')
    at: =OBX-5
    severity: error
    message: the lab marks this result as bad
skip:
  if: =eq(OBX-11, 'D')
  reason: deleted results are not made
body:
  code:
    text: =OBX-3.1
"""


def test_checks_with_and_without_at(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/thing.yaml": CHECKED})
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1", "OBX|2|ED|B||x||||||F")
    )
    found = [
        (i.severity, i.code, i.location, i.diagnostics)
        for i in translation.issues
        if i.code == "business-rule"
    ]
    assert found == [
        ("warning", "business-rule", "OBX[1]-11", "no result status"),
        ("information", "business-rule", "OBX[2]", "an embedded document is not read"),
    ]
    assert len(of_type(translation, "Basic")) == 2


def test_a_check_of_severity_error_stops_the_resource(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/thing.yaml": CHECKED})
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||BAD||||||F", "OBX|2|NM|B||2||||||F")
    )
    assert [(i.location, i.diagnostics) for i in errors(translation.issues)] == [
        ("OBX[1]-5", "the lab marks this result as bad")
    ]
    assert [t["code"]["text"] for t in of_type(translation, "Basic")] == ["B"]


def test_skip(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/thing.yaml": CHECKED})
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1||||||D", "OBX|2|NM|B||2||||||F")
    )
    assert [t["code"]["text"] for t in of_type(translation, "Basic")] == ["B"]
    (note,) = [i for i in translation.issues if "not made" in i.diagnostics]
    assert note.severity == "information" and note.location == "OBX[1]"
    assert "deleted results are not made" in note.diagnostics
    assert not errors(translation.issues)


def test_skip_with_severity_warning_at_a_field(tmp_path: Path) -> None:
    # a resource that cannot be identified (no number) is left out with a located warning,
    # instead of the id error that would cost the whole message (issue 15)
    template = CHECKED.replace(
        "  if: =eq(OBX-11, 'D')\n  reason: deleted results are not made\n",
        "  if: =empty(OBX-3.1)\n  severity: warning\n  at: =OBX-3\n"
        "  reason: the result has no code\n",
    )
    root = mapping_root(tmp_path, {"_shared/hl7v2/resources/thing.yaml": template})
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|||1||||||F", "OBX|2|NM|B||2||||||F")
    )
    assert [t["code"]["text"] for t in of_type(translation, "Basic")] == ["B"]
    (note,) = [i for i in translation.issues if "not made" in i.diagnostics]
    assert (note.severity, note.location) == ("warning", "OBX[1]-3")
    assert "the result has no code" in note.diagnostics
    assert not errors(translation.issues)


def test_required_element_missing_is_an_error(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from:
              - [=OBX-3.1]
            required: [code.coding, subject]
            body:
              code:
                coding:
                  - code: =OBX-3.1
              subject:
                display: =PID-5
        """
        },
    )
    translation = translate(load(root), hl7("PID|1||P1|||", "OBR|1||R1", "OBX|1|NM|A||1"))
    (error,) = errors(translation.issues)
    assert error.code == "required" and error.location == "OBX[1]"
    assert "Basic.subject is required" in error.diagnostics
    assert not of_type(translation, "Basic")


def test_an_id_from_empty_identifiers_is_an_error(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="code: =OBX-3.1")
    translation = translate(load(root), hl7("PID|1||P1", "OBR|1|", "OBX|1|NM|A||1"))
    (error,) = errors(translation.issues)
    assert error.code == "required" and "id" in error.diagnostics


def test_id_from_alternatives(tmp_path: Path) -> None:
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/resources/thing.yaml": """\
            version: 1
            kind: resource
            resourceType: Basic
            id_from:
              - [=OBR-3, =OBX-3.1, =OBX-4]
              - [=OBR-3, =OBX-3.1]
            body:
              code: =OBX-3.1
        """
        },
    )
    translation = translate(
        load(root),
        hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A|1|1", "OBX|2|NM|A|2|1", "OBX|3|NM|B||1"),
    )
    assert [t["id"] for t in of_type(translation, "Basic")] == [
        deterministic_id("Basic", ["R1", "A", "1"]),
        deterministic_id("Basic", ["R1", "A", "2"]),
        deterministic_id("Basic", ["R1", "B"]),
    ]


# -- duplicates ---------------------------------------------------------------------------------


def test_the_same_resource_from_different_content_is_an_error(tmp_path: Path) -> None:
    """Two OBX with the same item code in one order make the same id: the second is an error
    that names both places."""
    root = mapping_root(tmp_path, body="value: =OBX-5")
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1", "OBX|2|NM|A||2")
    )
    (error,) = errors(translation.issues)
    assert error.code == "duplicate" and error.location == "OBX[2]"
    assert "OBX[1]" in error.diagnostics and "thing.yaml" in error.diagnostics


def test_the_same_resource_twice_with_the_same_content_is_made_once(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="value: =OBX-3.1")
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1", "OBX|2|NM|A||2")
    )
    assert not errors(translation.issues)
    assert len(of_type(translation, "Basic")) == 1


def test_the_same_patient_twice_first_wins(tmp_path: Path) -> None:
    # the template says so (on_conflict in_message: first-wins); without it this is the
    # "made twice" error of the test above
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": MESSAGE.replace(
                "      - each: ORDER_OBSERVATION\n",
                "      - resource: patient\n        bind: patient\n"
                "      - each: ORDER_OBSERVATION\n",
            ),
            "_shared/hl7v2/resources/patient.yaml": """\
            version: 1
            kind: resource
            resourceType: Patient
            on_conflict:
              policy: update-given
              in_message: first-wins
            id_from:
              - [=PID-3.1]
            body:
              name:
                - text: =PID-5
        """,
        },
        body="subject: =ref(@patient)",
    )
    translation = translate(
        load(root),
        hl7(
            "PID|1||P1||张三",
            "OBR|1||R1",
            "OBX|1|NM|A||1",
            "PID|2||P1||张三丰",
            "OBR|1||R2",
            "OBX|1|NM|B||1",
        ),
    )
    assert not errors(translation.issues)
    (patient,) = of_type(translation, "Patient")
    assert patient["name"] == [{"text": "张三"}]
    subjects = {t["subject"]["reference"] for t in of_type(translation, "Basic")}
    assert subjects == {f"Patient/{patient['id']}"}


# -- deterministic ids ------------------------------------------------------------------------


def test_ids_are_stable_across_runs_and_machines() -> None:
    # a hard-coded value: changing the scheme would duplicate every resource at destinations
    assert (
        deterministic_id("Observation", ["qingshan", "R1", "WBC"])
        == "8cf89757-4a84-52e6-9014-d245e14d760d"
    )


def test_ids_differ_for_different_keys() -> None:
    ids = {
        deterministic_id("Observation", ["a", "b"]),
        deterministic_id("Observation", ["ab", ""]),
        deterministic_id("Observation", ["a", "b", ""]),
        deterministic_id("Specimen", ["a", "b"]),
        deterministic_id("Observation", ["b", "a"]),
    }
    assert len(ids) == 5
    assert deterministic_id("Observation", [" a ", "b"]) == deterministic_id(
        "Observation", ["a", "b"]
    )


def test_translating_twice_gives_the_same_resources(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="value: =OBX-5")
    mappings = load(root)
    first = translate(mappings, hl7(*ORU)).resources
    second = translate(load(root), hl7(*ORU)).resources
    assert first == second and len(first) == 2


# -- whole segments --------------------------------------------------------------------------


def test_a_whole_segment_only_says_whether_it_is_there(tmp_path: Path) -> None:
    (made,) = thing(
        tmp_path,
        """
        present: =exists(PID)
        absent: =exists(ZPI)
        gone: =empty(ZPI)
        as_text: =text(PID)
    """,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|A||1",
    )
    assert made["present"] is True and made["absent"] is False and made["gone"] is True
    assert "as_text" not in made  # never the inner representation of a segment


def test_a_whole_segment_as_a_value_is_an_error_at_the_segment(tmp_path: Path) -> None:
    root = mapping_root(tmp_path, body="patient: =PID")
    translation = translate(load(root), hl7("PID|1||P1", "OBR|1||R1", "OBX|1|NM|A||1"))
    (error,) = errors(translation.issues)
    assert error.location == "PID[1]" and "whole segment" in error.diagnostics
    assert translation.resources == []


def test_an_error_already_reported_still_stops_the_next_resource(tmp_path: Path) -> None:
    """Two results read the same bad OBR-7: the issue is listed once, but neither result is
    made from it (the second must not pass for lack of a new issue)."""
    root = mapping_root(tmp_path, body="when: =dtm_to_datetime(first(OBX-14, OBR-7))")
    translation = translate(
        load(root), hl7("PID|1||P1", "OBR|1||R1||||20261345", "OBX|1|NM|A||1", "OBX|2|NM|B||2")
    )
    assert [i.location for i in errors(translation.issues)] == ["OBR[1]-7"]
    assert of_type(translation, "Basic") == []


def test_deterministic_id_is_the_uuid_of_the_hash_as_before() -> None:
    """The id is formatted by hand (ids.py): the same text as uuid.UUID with version 5 of the
    first 16 bytes of the SHA-256, for keys of every kind (this pins every stored id)."""
    chooser = random.Random(20261204)
    alphabet = "abcXYZ019 ^&~|血糖\x00\u00e9"
    for _ in range(2000):
        parts = ["".join(chooser.choices(alphabet, k=chooser.randint(0, 12))) for _ in range(3)]
        key = "\x1f".join(["Observation", *(p.strip() for p in parts)])
        digest = hashlib.sha256(key.encode("utf-8")).digest()[:16]
        assert deterministic_id("Observation", parts) == str(uuid.UUID(bytes=digest, version=5))
