"""Through the shared ORU^R01 mapping: a value left in a repetition or a component no rule
read is reported at its place (decision 0016, amendment), a warning when clinical."""

from __future__ import annotations

from adapter.pipeline import Translator
from tests.mappings.conftest import FIXTURES

CBC = FIXTURES / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"


def unread(translator: Translator, raw: bytes) -> dict[str, str]:
    outcome = translator.translate(raw, "std-hl7v2")
    assert not outcome.failed
    return {
        i.location or "": i.severity
        for i in outcome.issues
        if "not read by any mapping rule" in i.diagnostics
    }


def added(translator: Translator, raw: bytes) -> dict[str, str]:
    """What ``raw`` (the golden message changed) reports beyond the golden message."""
    before = unread(translator, CBC.read_bytes())
    return {k: v for k, v in unread(translator, raw).items() if k not in before}


def test_the_golden_message_reports_no_clinical_content_unread(translator: Translator) -> None:
    assert "warning" not in unread(translator, CBC.read_bytes()).values()


def test_a_second_result_in_a_numeric_value_is_a_warning(translator: Translator) -> None:
    """``OBX-5`` of an NM result is read as one number: a second repetition (an analyser
    writing a repeat measurement) was counted as read with the field and lost quietly."""
    raw = CBC.read_bytes().replace(b"||11.2|", b"||11.2~11.4|", 1)
    assert raw != CBC.read_bytes()
    assert added(translator, raw) == {"OBX[1]-5[2]": "warning"}


def test_a_component_no_rule_reads_is_located(translator: Translator) -> None:
    """A name type code in the seventh component of the name is read by no rule: listed
    at its place, an information (administrative)."""
    raw = CBC.read_bytes().replace("||张^伟||".encode(), "||张^伟^^^^^L||".encode(), 1)
    assert raw != CBC.read_bytes()
    assert added(translator, raw) == {"PID[1]-5[1].7": "information"}
