"""The unmapped-code rule of a concept map, applied by the terminology module itself
(``ConceptMap.translate``): what an unknown code gives and what is reported."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.mapping.terminology import Target, Unmapped, concept_map_from_data

SYSTEM = "http://example.org/flags"


def flags(**unmapped: Any) -> Any:
    data = {"version": 1, "target_system": SYSTEM, "map": {"H": "high"}, "unmapped": unmapped}
    return concept_map_from_data("flags", "flags.yaml", data)


def test_a_known_code_gets_the_table_system_and_no_report() -> None:
    assert flags(action="error").translate("h") == (Target("high", None, SYSTEM), None)


@pytest.mark.parametrize(
    ("unmapped", "target", "report"),
    [
        ({"action": "keep"}, Target("Q9"), Unmapped("information", "kept as is")),
        (
            {"action": "fixed", "code": "unknown", "report": "warning"},
            Target("unknown", None, SYSTEM),
            Unmapped("warning", "default used (unknown)"),
        ),
        ({"action": "omit", "report": "none"}, None, None),
        ({"action": "error", "report": "none"}, None, Unmapped("error", "")),
    ],
)
def test_an_unknown_code_follows_the_table_rule(
    unmapped: dict[str, Any], target: Target | None, report: Unmapped | None
) -> None:
    found, notice = flags(**unmapped).translate("Q9")
    assert found == target
    if report is None:
        assert notice is None
        return
    assert notice is not None and notice.severity == report.severity
    assert notice.message.startswith("code 'Q9' is not in concept map 'flags'")
    assert notice.message.endswith(report.message)


def test_a_hint_tells_the_reader_what_to_do_and_the_default_is_named() -> None:
    table = flags(action="fixed", code="unknown", report="warning", hint="map it in the dialect")
    found, notice = table.translate("1")
    assert found == Target("unknown", None, SYSTEM)
    assert notice == Unmapped(
        "warning",
        "code '1' is not in concept map 'flags'; default used (unknown). map it in the dialect",
    )
    # without a hint the notice ends with the outcome
    assert flags(action="omit", report="warning").translate("1")[1] == Unmapped(
        "warning", "code '1' is not in concept map 'flags'; left out"
    )


def test_a_lookup_beside_the_code_reports_nothing_but_errors() -> None:
    assert flags(action="keep", report="warning").translate("Q9", report=False) == (
        Target("Q9"),
        None,
    )
    assert flags(action="error").translate("Q9", report=False)[1] is not None
