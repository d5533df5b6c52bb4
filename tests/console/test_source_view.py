"""The message content as the console shows it: decoded, identifiers masked, each located
issue marked where it points (HL7 v2 field of an occurrence, XML element line, CSV row)."""

from __future__ import annotations

from adapter.console.source_view import SourceView, build
from adapter.settings import PROJECT_ROOT

BAD = PROJECT_ROOT / "fixtures/hl7v2/bad"


def _marked(view: SourceView) -> list[tuple[int, str, int | None]]:
    return [
        (line.number, span.text, span.issue)
        for line in view.lines
        for span in line.spans
        if span.issue is not None
    ]


def _text(view: SourceView) -> str:
    return "\n".join("".join(s.text for s in line.spans) for line in view.lines)


def test_hl7_fields_are_marked_by_occurrence_and_msh_counts_its_separator() -> None:
    raw = (BAD / "nm-text.hl7").read_bytes()
    issues = [
        {"severity": "error", "code": "value", "diagnostics": "x", "location": "OBX[3]-5"},
        {"severity": "warning", "code": "value", "diagnostics": "y", "location": "MSH-9"},
        {"severity": "warning", "code": "value", "diagnostics": "z", "location": "ZZZ[1]"},
    ]
    view = build(raw, "hl7v2", "utf-8", issues)
    assert _marked(view) == [(1, "ORU^R01^ORU_R01", 1), (6, "阴性", 0)]
    assert view.placed == {0, 1}  # the Z-segment is not in the message: listed only
    text = _text(view)
    assert "430999196803151231" not in text and "[REDACTED-ID]" in text
    assert "张^伟" not in text and "张^*" in text


def test_a_segment_without_a_field_is_marked_whole() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|20261201||ORU^R01|1|P|2.5.1\rZLS|1|x\r"
    issue = {"severity": "warning", "code": "x", "diagnostics": "unread", "location": "ZLS[1]"}
    assert _marked(build(raw, "hl7v2", "utf-8", [issue])) == [(2, "ZLS|1|x", 0)]


def _issue(severity: str, location: str) -> dict[str, str]:
    return {"severity": severity, "code": "x", "diagnostics": "d", "location": location}


def test_xml_paths_mark_the_element_line_whatever_the_namespace() -> None:
    raw = (
        '<?xml version="1.0" encoding="UTF-8"?><ClinicalDocument xmlns="urn:hl7-org:v3">'
        "<title>出院小结</title><recordTarget><patientRole><patient><name>李四</name>"
        "</patient></patientRole></recordTarget><component><x/></component>"
        "<component><y>1</y></component></ClinicalDocument>"
    ).encode()
    issues = [
        _issue("warning", "/ClinicalDocument/title[1]"),
        _issue("error", "/ClinicalDocument/component[2]/y/@value"),
    ]
    view = build(raw, "cda", "utf-8", issues)
    marked = {issue: text.strip() for _, text, issue in _marked(view)}
    assert marked == {0: "<title>出院小结</title>", 1: "<y>1</y>"}
    assert "李四" not in _text(view) and "<name>李*</name>" in _text(view)


def test_csv_rows_mark_their_line() -> None:
    raw = "姓名,结果\n王五,5.1\n赵六,abc\n".encode()
    issue = {
        "severity": "warning",
        "code": "value",
        "diagnostics": "n",
        "location": "row 3, column 结果",
    }
    view = build(raw, "csv", "utf-8", [issue])
    assert _marked(view) == [(3, "赵*,abc", 0)]
    assert "王五" not in _text(view)


def test_gbk_bytes_are_decoded_with_the_encoding_found() -> None:
    raw = "MSH|^~\\&|A|B|C|D|20261201||ORU^R01|1|P|2.5.1\rOBX|1|ST|X^血糖||正常\r".encode("gbk")
    assert "血糖" in _text(build(raw, "hl7v2", "gbk", []))
