"""The silent-drop detector: content present in a message that no rule read is listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MappingDefinitionError
from adapter.mapping.translation import Translation
from tests.unit.mapping_support import MESSAGE, hl7, load, mapping_root, translate

SEGMENTS = (
    "PID|1||P1",
    "OBR|1||R1",
    "OBX|1|NM|WBC||6.5|g/L|3.5-9.5",
)
# what the body below reads; PID-1 / OBR-1 / OBX-1 are set-ids, read by nobody
BODY = """
    code: =OBX-3
    order: =OBR-3
    patient: =PID-3
    value: =OBX-5
"""


def run(
    tmp_path: Path, *segments: str, body: str = BODY, ignore: str = "[MSH, PV1]"
) -> Translation:
    message = MESSAGE.replace("ignore: [MSH, PV1]", f"ignore: {ignore}")
    root = mapping_root(tmp_path, {"_shared/hl7v2/messages/oru.yaml": message}, body=body)
    return translate(load(root), hl7(*(segments or SEGMENTS)))


def unread(translation: Translation) -> list[tuple[str, str | None]]:
    return [
        (i.severity, i.location)
        for i in translation.issues
        if "not read by any mapping rule" in i.diagnostics
    ]


def test_fields_no_rule_reads_are_information(tmp_path: Path) -> None:
    translation = run(tmp_path)
    assert unread(translation) == [
        ("information", "PID[1]-1"),
        ("information", "OBR[1]-1"),
        ("information", "OBX[1]-1"),
        ("information", "OBX[1]-2"),
        ("information", "OBX[1]-6"),
        ("information", "OBX[1]-7"),
    ]
    assert translation.unread == [
        "PID[1]-1",
        "OBR[1]-1",
        "OBX[1]-1",
        "OBX[1]-2",
        "OBX[1]-6",
        "OBX[1]-7",
    ]
    messages = {i.diagnostics for i in translation.issues if i.location == "OBX[1]-6"}
    assert messages == {"field not read by any mapping rule"}


def test_an_unplaced_z_segment_is_a_warning(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        *SEGMENTS,
        "ZRS|1|vendor data",
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, OBX-6, OBX-7]",
    )
    assert unread(translation) == [("warning", "ZRS[1]")]
    (issue,) = [i for i in translation.issues if i.location == "ZRS[1]"]
    assert issue.diagnostics == "segment not read by any mapping rule"


def test_a_placed_segment_no_rule_looks_at_is_a_warning(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1",
        "PV1|1|O",
        "OBR|1||R1",
        "NTE|1||order note",
        "OBX|1|NM|WBC||6.5",
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2]",
    )
    assert unread(translation) == [("warning", "NTE[1]")]


def test_ignore_suppresses_fields_and_segments(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        *SEGMENTS,
        "ZRS|1|vendor data",
        ignore="[MSH, PV1, ZRS, PID-1, OBR-1, OBX-1, OBX-2, OBX-6, OBX-7]",
    )
    assert unread(translation) == []
    assert translation.unread == []


def test_empty_fields_are_not_listed(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1||WBC||6.5|||||||",
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1]",
    )
    assert unread(translation) == []


def test_an_alternative_of_first_with_another_value_stays_unread(tmp_path: Path) -> None:
    """``first(OBX-14, OBR-7)`` takes OBX-14; OBR-7 holding another time was not used, so
    it is listed (it used to count as read because the rule looked at it). The same for a
    path inside a call: the reference range in OBX-7 is not the value taken."""
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1||||20261120",
        "OBX|1|NM|WBC||6.5|g/L|3.5-9.5|||||||20261121",
        body=BODY
        + """
    when: =first(OBX-14, OBR-7)
    range: =first(OBX-5, text(OBX-7), upper(OBX-6))
    """,
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2]",
    )
    assert unread(translation) == [
        ("information", "OBR[1]-7"),
        ("information", "OBX[1]-6"),
        ("information", "OBX[1]-7"),
    ]


def test_an_alternative_of_first_with_the_same_value_or_none_counts_as_read(
    tmp_path: Path,
) -> None:
    """The same time in OBR-7 and OBX-14, an empty OBX-6: nothing was lost by choosing."""
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1||||20261121",
        "OBX|1|NM|WBC||6.5||6.5|||||||20261121",
        body=BODY
        + """
    when: =first(OBX-14, OBR-7)
    range: =first(OBX-5, text(OBX-7), upper(OBX-6))
    """,
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2]",
    )
    assert unread(translation) == []


def test_an_unused_clinical_alternative_is_a_warning(tmp_path: Path) -> None:
    """A note written in the result field and again, differently, in an NTE: a rule taking
    ``first(OBX-5, NTE-3)`` uses OBX-5; the note is not read, so its segment (nothing else
    of it read) is listed as a warning."""
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|ST|WBC||见备注",
        "NTE|1||镜检见异型淋巴细胞",
        body="""
    code: =OBX-3
    order: =OBR-3
    patient: =PID-3
    value: =first(OBX-5, NTE-3)
    """,
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, NTE-1]",
    )
    assert unread(translation) == [("warning", "NTE[1]")]


def test_each_over_a_segment_reads_it(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        "NTE|1||note",
        body=BODY
        + """
    note:
      - each: NTE
        emit:
          text: =NTE-3
    """,
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, NTE-1]",
    )
    assert unread(translation) == []


def test_a_rule_in_a_gate_not_taken_does_not_read(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        body=BODY
        + """
    range:
      if: =eq(OBX-2, 'SN')
      text: =OBX-7
    """,
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-6]",
    )
    assert unread(translation) == [("information", "OBX[1]-7")]


# -- clinical content: its loss is a warning, the rest an information ----------------------

BODY_WITHOUT_VALUE = """
    code: =OBX-3
    order: =OBR-3
    patient: =PID-3
"""


def test_an_unread_observation_value_is_a_warning(tmp_path: Path) -> None:
    translation = run(
        tmp_path, body=BODY_WITHOUT_VALUE, ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, OBX-7]"
    )
    # OBX-5 (the value) is clinical by default; OBX-6 (its unit) is not
    assert unread(translation) == [("warning", "OBX[1]-5"), ("information", "OBX[1]-6")]


def test_an_unread_note_in_a_read_segment_is_a_warning(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        "NTE|1|L|复查建议",
        body=BODY + "    source: =NTE-2\n",
        ignore="[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, NTE-1]",
    )
    assert unread(translation) == [("warning", "NTE[1]-3")]


def test_a_read_z_segment_s_unread_fields_are_warnings(tmp_path: Path) -> None:
    message = MESSAGE.replace("items: [OBX!, NTE*]", "items: [OBX!, NTE*, ZRS?]")
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": message.replace(
                "ignore: [MSH, PV1]", "ignore: [MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, OBX-6, OBX-7]"
            )
        },
        body=BODY + "    vendor: =ZRS-1\n",
    )
    translation = translate(load(root), hl7(*SEGMENTS, "ZRS|1|仪器复核: 异常"))
    assert unread(translation) == [("warning", "ZRS[1]-2")]


def test_clinical_in_the_mapping_replaces_the_format_default(tmp_path: Path) -> None:
    message = MESSAGE.replace(
        "ignore: [MSH, PV1]",
        "ignore: [MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2]\nclinical: [OBX-7]",
    )
    root = mapping_root(
        tmp_path, {"_shared/hl7v2/messages/oru.yaml": message}, body=BODY_WITHOUT_VALUE
    )
    translation = translate(load(root), hl7(*SEGMENTS))
    assert unread(translation) == [
        ("information", "OBX[1]-5"),
        ("information", "OBX[1]-6"),
        ("warning", "OBX[1]-7"),
    ]


def test_a_bad_clinical_entry_is_a_load_error(tmp_path: Path) -> None:
    message = MESSAGE.replace("ignore: [MSH, PV1]", "ignore: [MSH, PV1]\nclinical: [OBX.5]")
    root = mapping_root(tmp_path, {"_shared/hl7v2/messages/oru.yaml": message})
    with pytest.raises(MappingDefinitionError, match=r"clinical: 'OBX\.5' is not a segment"):
        load(root)


# -- to the repetition and the component ----------------------------------------------------

PRECISE = "[MSH, PV1, PID-1, OBR-1, OBX-1, OBX-2, OBX-6, OBX-7]"


def test_a_second_repetition_of_a_value_read_once_is_a_warning(tmp_path: Path) -> None:
    """``value: =OBX-5`` reads the first repetition only: a second result in OBX-5[2] would
    be lost quietly if the field counted as read."""
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        "OBX|2|ST|HBsAg||阴性~弱阳性",
        body="""
    code: =OBX-3
    order: =OBR-3
    patient: =PID-3
    value:
      - each: OBX
        emit: =OBX-5
    """,
        ignore=PRECISE,
    )
    assert unread(translation) == [("warning", "OBX[2]-5[2]")]
    assert translation.unread == ["OBX[2]-5[2]"]
    issue = next(i for i in translation.issues if i.location == "OBX[2]-5[2]")
    assert issue.diagnostics == "field not read by any mapping rule"


def test_every_repetition_read_leaves_nothing(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|TX|IMP||第一行~第二行",
        body=BODY.replace("=OBX-5", "=join_repetitions(OBX-5)"),
        ignore=PRECISE,
    )
    assert unread(translation) == []


def test_a_component_no_rule_read_is_listed_with_its_place(tmp_path: Path) -> None:
    """``PID-11`` read as text is its first component (the street); the city in
    ``PID-11[1].3`` is listed (administrative: information), the second address whole."""
    translation = run(
        tmp_path,
        "PID|1||P1||||||||石桥村六组3号^^青山县^湖南省~县城新街8号",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        body=BODY + "    address: =PID-11\n",
        ignore=PRECISE,
    )
    assert unread(translation) == [
        ("information", "PID[1]-11[1].3"),
        ("information", "PID[1]-11[1].4"),
        ("information", "PID[1]-11[2]"),
    ]


def test_components_read_one_by_one_count(tmp_path: Path) -> None:
    translation = run(
        tmp_path,
        "PID|1||P1||||||||石桥村六组3号^^青山县^湖南省",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        body=BODY + "    address: =join(' ', PID-11.4, PID-11.3, PID-11.1)\n",
        ignore=PRECISE,
    )
    assert unread(translation) == []


def test_a_clinical_component_is_a_warning_its_code_system_information(
    tmp_path: Path,
) -> None:
    """Of a coded diagnosis (DG1-3) the code and its text are clinical, the code system in
    component 3 is not (clinical default ``DG1-3.1``, ``DG1-3.2``)."""
    message = MESSAGE.replace("items: [OBX!, NTE*]", "items: [OBX!, NTE*, DG1*]")
    root = mapping_root(
        tmp_path,
        {
            "_shared/hl7v2/messages/oru.yaml": message.replace(
                "ignore: [MSH, PV1]", f"ignore: {PRECISE[:-1]}, DG1-1]"
            )
        },
        body=BODY + "    diagnosis: =DG1-3\n",
    )
    translation = translate(load(root), hl7(*SEGMENTS, "DG1|1||I20.000^不稳定型心绞痛^ICD10"))
    assert unread(translation) == [
        ("warning", "DG1[1]-3[1].2"),
        ("information", "DG1[1]-3[1].3"),
    ]


# -- ignore: a component ---------------------------------------------------------------------


def test_an_ignored_component_is_not_listed_its_sibling_is(tmp_path: Path) -> None:
    """``ignore: [PID-11.4]`` (the province, known to every consortium member) leaves the
    city in ``PID-11[1].3`` listed, in every repetition of the field."""
    translation = run(
        tmp_path,
        "PID|1||P1||||||||石桥村六组3号^^青山县^湖南省~县城新街8号^^^湖南省",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        body=BODY + "    address: =PID-11\n",
        ignore=f"{PRECISE[:-1]}, PID-11.4]",
    )
    assert unread(translation) == [
        ("information", "PID[1]-11[1].3"),
        ("information", "PID[1]-11[2].1"),
    ]


def test_an_ignored_component_of_a_field_no_rule_reads(tmp_path: Path) -> None:
    """A field no rule reads is listed whole; with one of its components ignored, its other
    filled components are listed one by one (never the ignored one); a field holding only
    ignored components is not listed."""
    translation = run(
        tmp_path,
        "PID|1||P1||||||小张^^^^^^A|||||||||||13907310012^^^QSXRMYY",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5",
        ignore=f"{PRECISE[:-1]}, PID-9.7, PID-20.4, PID-20.1]",
    )
    assert unread(translation) == [("information", "PID[1]-9[1].1")]


def test_an_ignored_clinical_component_is_not_a_warning_the_value_still_is(
    tmp_path: Path,
) -> None:
    """A second result in OBX-5 is clinical; ignoring a component of it (``OBX-5.2``, a
    vendor's unit echo) silences that component only."""
    translation = run(
        tmp_path,
        "PID|1||P1",
        "OBR|1||R1",
        "OBX|1|NM|WBC||6.5^g/L~6.7^g/L",
        ignore=f"{PRECISE[:-1]}, OBX-5.2]",
    )
    assert unread(translation) == [("warning", "OBX[1]-5[2].1")]


def test_a_bad_ignore_entry_is_a_load_error(tmp_path: Path) -> None:
    """``PID.11`` (a dot for the hyphen) would silently ignore nothing."""
    message = MESSAGE.replace("ignore: [MSH, PV1]", "ignore: [MSH, PV1, PID.11]")
    root = mapping_root(tmp_path, {"_shared/hl7v2/messages/oru.yaml": message})
    with pytest.raises(MappingDefinitionError, match=r"ignore: 'PID\.11' is not a segment"):
        load(root)
