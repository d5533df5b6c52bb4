"""The named transforms, called the way the engine calls them: with an evaluation and
source positions (``node``) that know their location, so issues name the field."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapter.identity import national_id_check_char
from adapter.mapping.evaluation import Evaluation
from adapter.mapping.functions import FUNCTIONS
from tests.unit.mapping_support import evaluation, node, table


def call(name: str, *args: Any, ev: Evaluation | None = None) -> tuple[Any, list]:
    ev = ev or evaluation()
    result = FUNCTIONS[name](ev, *args)
    return result, [(i.severity, i.location, i.diagnostics) for i in ev.state.issues]


# -- dates and times ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026", "2026"),
        ("202611", "2026-11"),
        ("20261120", "2026-11-20"),
        ("2026112008", "2026-11-20T08:00:00+08:00"),
        ("202611200830", "2026-11-20T08:30:00+08:00"),
        ("20261120083015", "2026-11-20T08:30:15+08:00"),
        ("20261120083015.1", "2026-11-20T08:30:15.1+08:00"),
        ("20261120083015.1234", "2026-11-20T08:30:15.1234+08:00"),
        ("20261120083015+0800", "2026-11-20T08:30:15+08:00"),
        ("20261120083015-0500", "2026-11-20T08:30:15-05:00"),
        ("202611200830+0530", "2026-11-20T08:30:00+05:30"),
        ("20261120083015Z", "2026-11-20T08:30:15Z"),
        (" 20261120083015 ", "2026-11-20T08:30:15+08:00"),
        # ISO forms some vendors write instead of HL7 DTM
        ("2026-11-20", "2026-11-20"),
        ("2026-11-20 08:30:00", "2026-11-20T08:30:00+08:00"),
        ("2026-11-20T08:30", "2026-11-20T08:30:00+08:00"),
        ("2026-11-20T08:30:00+08:00", "2026-11-20T08:30:00+08:00"),
        ("2026-11-20T08:30:00-05:00", "2026-11-20T08:30:00-05:00"),
        ("2026-11-20T08:30:00Z", "2026-11-20T08:30:00Z"),
        ("2026-11-20T08:30:00.123456+08:00", "2026-11-20T08:30:00.123456+08:00"),
    ],
)
def test_dtm_to_datetime(written: str, expected: str) -> None:
    assert call("dtm_to_datetime", node(written, field=14)) == (expected, [])


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("20261345", "not a real date"),
        ("20260230", "not a real date"),
        ("20270229", "not a real date"),
        ("20261120250000", "not a real date"),
        ("20261120086000", "not a real date"),
        ("20261120083015+2500", "zone"),
        ("20261120083015+0875", "zone"),
        ("2026112", "not an HL7 date/time"),
        ("20261120 0830", "not an HL7 date/time"),
        ("2026/11/20", "not an HL7 date/time"),
        ("yesterday", "not an HL7 date/time"),
        ("2026-13-01", "not a real date"),
    ],
)
def test_impossible_dates_are_errors_at_the_field(written: str, words: str) -> None:
    result, issues = call("dtm_to_datetime", node(written, field=14))
    assert result is None
    ((severity, where, message),) = issues
    assert severity == "error" and where == "OBX[1]-14"
    assert words in message


def test_leap_day_is_a_real_date() -> None:
    assert call("dtm_to_date", node("20280229", field=7))[0] == "2028-02-29"


def test_local_times_take_the_zone_of_the_consortium_with_its_summer_time() -> None:
    ev = evaluation()
    ev.state.timezone = ZoneInfo("America/New_York")
    assert call("dtm_to_datetime", node("20260115083000"), ev=ev)[0] == "2026-01-15T08:30:00-05:00"
    assert call("dtm_to_datetime", node("20260715083000"), ev=ev)[0] == "2026-07-15T08:30:00-04:00"


def test_a_time_converted_again_is_converted_once_per_zone(monkeypatch) -> None:
    from adapter.mapping.functions import dates

    parsed: list[str] = []
    real = dates._parse_dtm

    def counting(ev, value, *, lenient=False):
        parsed.append(value.text)
        return real(ev, value, lenient=lenient)

    monkeypatch.setattr(dates, "_parse_dtm", counting)
    written = "20260115083001"  # a text no other test converts
    assert call("dtm_to_datetime", node(written))[0] == "2026-01-15T08:30:01+08:00"
    assert call("dtm_to_datetime_or_omit", node(f" {written} "))[0] == "2026-01-15T08:30:01+08:00"
    assert call("dtm_to_instant", node(written))[0] == "2026-01-15T08:30:01+08:00"
    assert parsed == [written]  # once: the same text in the same zone
    ev = evaluation()
    ev.state.timezone = ZoneInfo("America/New_York")  # another zone: converted there
    assert call("dtm_to_datetime", node(written), ev=ev)[0] == "2026-01-15T08:30:01-05:00"
    assert len(parsed) == 2
    # a text that does not convert is reported every time it is met
    for _ in range(2):
        result, issues = call("dtm_to_datetime", node("20261345", field=14))
        assert result is None and [i[:2] for i in issues] == [("error", "OBX[1]-14")]
    # an instant of a date alone is still a warning, though the date converted before
    call("dtm_to_datetime", node("20260116"))
    result, issues = call("dtm_to_instant", node("20260116", field=19))
    assert result is None and [i[:2] for i in issues] == [("warning", "OBX[1]-19")]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("20261120083015+0800", "2026-11-20"),
        ("202611", "2026-11"),
        ("1987", "1987"),
        ("1987-06-05", "1987-06-05"),
    ],
)
def test_dtm_to_date(written: str, expected: str) -> None:
    assert call("dtm_to_date", node(written, "PID", 7)) == (expected, [])


def test_dtm_to_date_impossible() -> None:
    result, issues = call("dtm_to_date", node("19870230", "PID", 7))
    assert result is None and issues[0][:2] == ("error", "PID[1]-7")


def test_dtm_to_instant() -> None:
    assert call("dtm_to_instant", node("20261120083015", field=19)) == (
        "2026-11-20T08:30:15+08:00",
        [],
    )
    result, issues = call("dtm_to_instant", node("20261120", field=19))
    assert result is None
    ((severity, where, message),) = issues
    assert severity == "warning" and where == "OBX[1]-19" and "time of day" in message


@pytest.mark.parametrize(
    ("name", "strict"),
    [("dtm_to_instant", "dtm_to_datetime"), ("dtm_to_datetime_or_omit", "dtm_to_datetime")],
)
@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("F", "not an HL7 date/time"),
        ("20261345", "not a real date/time"),
        ("20261120083015+1900", "impossible time zone offset"),
    ],
)
def test_instants_and_or_omit_variants_warn_and_leave_out(
    name: str, strict: str, written: str, why: str
) -> None:
    # a report time that cannot be read (real LIS: OBR-22 = 'F') costs only that element
    result, issues = call(name, node(written, "OBR", 22))
    assert result is None
    ((severity, where, message),) = issues
    assert severity == "warning" and where == "OBR[1]-22"
    assert why in message and "left out" in message
    # the strict function keeps refusing the same value
    _, refused = call(strict, node(written, "OBR", 22))
    assert refused[0][:2] == ("error", "OBR[1]-22")


def test_or_omit_variants_read_good_values_like_the_strict_ones() -> None:
    assert call("dtm_to_datetime_or_omit", node("20261120", "OBR", 22)) == ("2026-11-20", [])
    assert call("dtm_to_datetime_or_omit", node("20261120083015", "OBR", 22)) == (
        "2026-11-20T08:30:15+08:00",
        [],
    )


def test_empty_dates_are_nothing_without_issue() -> None:
    for name in ("dtm_to_datetime", "dtm_to_date", "dtm_to_instant", "dtm_to_datetime_or_omit"):
        assert call(name, node("", field=14)) == (None, [])
        assert call(name, None) == (None, [])


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("6.5", 6.5),
        ("150", 150),
        (" 7 ", 7),
        ("-0.5", -0.5),
        ("+5", 5),
        (".5", 0.5),
        ("0", 0),
        ("１２.５", 12.5),  # full-width digits typed with a Chinese input method
        # exponent notation (viral loads), as FHIR decimal allows: a whole number is an int
        ("2.4E+05", 240000),
        ("1e3", 1000),
        ("2.40E+05", 240000),
        ("3.2E-02", 0.032),
        ("1.23456789E+05", 123456.789),
    ],
)
def test_text_to_decimal(written: str, expected: float) -> None:
    result, issues = call("text_to_decimal", node(written))
    assert result == expected and type(result) is type(expected) and issues == []


@pytest.mark.parametrize("written", ["阴性", "1e", "E5", "2.4E+", "<0.5", "6.5.1", "NaN", "1,5"])
def test_text_to_decimal_error(written: str) -> None:
    result, issues = call("text_to_decimal", node(written))
    assert result is None
    ((severity, where, message),) = issues
    assert (severity, where) == ("error", "OBX[1]-5") and "not a number" in message


def test_an_exponent_beyond_what_a_number_keeps_is_an_error() -> None:
    result, issues = call("text_to_decimal", node("1E+300"))
    ((severity, where, message),) = issues
    assert result is None and (severity, where) == ("error", "OBX[1]-5") and "digits" in message


def test_text_to_decimal_of_nothing() -> None:
    assert call("text_to_decimal", node("")) == (None, [])


@pytest.mark.parametrize(
    ("written", "value", "comparator"),
    [
        ("<0.5", 0.5, "<"),
        ("< 0.5", 0.5, "<"),
        (">60", 60, ">"),
        ("<=5", 5, "<="),
        (">=5", 5, ">="),
        ("≤5", 5, "<="),
        ("≥5", 5, ">="),
        ("＜0.5", 0.5, "<"),  # full-width signs, as a Chinese input method types them
        ("＞60", 60, ">"),
        ("≦5", 5, "<="),
        ("≧5", 5, ">="),
        ("5.2", 5.2, None),
    ],
)
def test_quantity_value_and_comparator(written: str, value: float, comparator: str | None) -> None:
    assert call("quantity_value", node(written)) == (value, [])
    assert call("quantity_comparator", node(written)) == (comparator, [])
    assert call("has_comparator", node(written))[0] is (comparator is not None)


def test_quantity_value_of_text_is_an_error() -> None:
    result, issues = call("quantity_value", node("<阴性"))
    assert result is None and issues[0][:2] == ("error", "OBX[1]-5")
    assert call("has_comparator", node("<阴性"))[0] is False
    assert call("quantity_value", node("<")) == (None, [])


@pytest.mark.parametrize(
    ("written", "low", "high"),
    [
        ("3.5-9.5", 3.5, 9.5),
        ("3.5 - 9.5", 3.5, 9.5),
        ("3.5～9.5", 3.5, 9.5),
        ("3.5~9.5", 3.5, 9.5),
        ("3.5－9.5", 3.5, 9.5),
        ("3.5—9.5", 3.5, 9.5),
        ("3.5至9.5", 3.5, 9.5),
        ("0-40", 0, 40),
        ("-2-2", -2, 2),
        ("<5", None, 5),
        ("<=5", None, 5),
        ("≤5", None, 5),
        (">60", 60, None),
        ("≥60", 60, None),
        ("＜5", None, 5),
        ("阴性", None, None),
        ("", None, None),
        ("3.5-", None, None),
    ],
)
def test_range_bounds(written: str, low: float | None, high: float | None) -> None:
    assert call("range_low", node(written, field=7)) == (low, [])
    assert call("range_high", node(written, field=7)) == (high, [])
    assert call("is_numeric_range", node(written, field=7))[0] is (
        low is not None or high is not None
    )


@pytest.mark.parametrize(
    ("written", "numeric"),
    [
        ("6.5", True),
        ("-1", True),
        ("0", True),
        ("<5", False),
        ("阴性", False),
        ("", False),
        ("1.2.3", False),
        ("2.4E+05", True),
        ("5e-3", True),
        ("2.4E", False),
    ],
)
def test_is_numeric(written: str, numeric: bool) -> None:
    assert call("is_numeric", node(written))[0] is numeric


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field6", "unit"),
    [
        ("10^9/L", "10^9/L"),  # caret not escaped: read as components "10" and "9/L", rejoined
        ("×10^9/L", "×10^9/L"),
        ("10^12/L", "10^12/L"),
        ("10\\S\\9/L", "10^9/L"),  # escaped properly: one component
        ("mmol/L^mmol/L^UCUM", "mmol/L"),  # coded: the code
        ("g/L", "g/L"),
        ("", None),
    ],
)
def test_unit_as_written(field6: str, unit: str | None) -> None:
    assert call("unit_as_written", node(field6, field=6)) == (unit, [])


def test_unit_of_a_component_or_text() -> None:
    unit = node("mmol/L^毫摩尔每升", field=6).child(2)
    assert call("unit_as_written", unit)[0] == "毫摩尔每升"
    assert call("unit_as_written", "g/L")[0] == "g/L"


# -- national ID --------------------------------------------------------------------------------

BODY = "11010519491231002"
VALID = BODY + national_id_check_char(BODY)
WRONG = BODY + ("0" if VALID[-1] != "0" else "1")
OLD = "110105491231002"  # 15 digits: 1949-12-31


def test_national_id_valid() -> None:
    assert call("national_id", node(VALID, "PID", 3)) == (VALID, [])
    assert call("national_id", node(VALID.lower(), "PID", 3))[0] == VALID
    assert call("national_id_18", node(VALID, "PID", 3)) == (None, [])


def test_national_id_bad_checksum_is_a_warning_without_the_number() -> None:
    result, issues = call("national_id", node(WRONG, "PID", 3))
    assert result == WRONG
    ((severity, where, message),) = issues
    assert severity == "warning" and where == "PID[1]-3" and "checksum" in message
    assert WRONG not in message and BODY not in message


def test_national_id_15_digits() -> None:
    result, issues = call("national_id", node(OLD, "PID", 3))
    assert result == OLD
    ((severity, where, message),) = issues
    assert severity == "warning" and where == "PID[1]-3" and "15-digit" in message
    eighteen, _ = call("national_id_18", node(OLD, "PID", 3))
    assert eighteen == "11010519491231002" + national_id_check_char("11010519491231002")


def test_national_id_garbage() -> None:
    result, issues = call("national_id", node("ABC", "PID", 3))
    assert result == "ABC" and issues and issues[0][0] == "warning"
    assert call("national_id", node("", "PID", 3)) == (None, [])


# -- concept maps ---------------------------------------------------------------------------------

ENTRIES = {
    "H": {"code": "high", "display": "High"},
    "L": "low",
    "X": {"code": "x", "system": "http://example.org/other"},
}


def tables(action: str, report: str | None = None, **extra: Any) -> dict:
    unmapped: dict[str, Any] = {"action": action, **extra}
    if report:
        unmapped["report"] = report
    return {
        "flags": table(
            "flags",
            {"target_system": "http://example.org/flags", "map": ENTRIES, "unmapped": unmapped},
        )
    }


def test_mapped_codes() -> None:
    ev = evaluation(concept_maps=tables("omit"))
    flag = node("H", field=8)
    assert FUNCTIONS["map"](ev, "flags", flag) == "high"
    assert FUNCTIONS["map"](ev, "flags", node("h", field=8)) == "high"  # case-insensitive
    assert FUNCTIONS["map_display"](ev, "flags", flag) == "High"
    assert FUNCTIONS["map_system"](ev, "flags", flag) == "http://example.org/flags"
    assert FUNCTIONS["map_system"](ev, "flags", node("X", field=8)) == "http://example.org/other"
    assert FUNCTIONS["coding"](ev, "flags", flag) == {
        "system": "http://example.org/flags",
        "code": "high",
        "display": "High",
    }
    assert FUNCTIONS["coding"](ev, "flags", node("L", field=8)) == {
        "system": "http://example.org/flags",
        "code": "low",
    }
    assert ev.state.issues == []


def test_case_sensitive_table() -> None:
    maps = {
        "flags": table(
            "flags",
            {
                "map": {"H": "high"},
                "case_sensitive": True,
                "unmapped": {"action": "omit", "report": "none"},
            },
        )
    }
    ev = evaluation(concept_maps=maps)
    assert FUNCTIONS["map"](ev, "flags", "h") is None
    assert FUNCTIONS["map"](ev, "flags", "H") == "high"


@pytest.mark.parametrize(
    ("action", "code", "coding", "suffix"),
    [
        # a kept code is the source's own code: it is not labelled with the target system
        ("keep", "Q9", {"code": "Q9"}, "kept as is"),
        (
            "fixed",
            "unknown",
            {"system": "http://example.org/flags", "code": "unknown", "display": "Unknown"},
            "default used (unknown)",
        ),
        ("omit", None, None, "left out"),
    ],
)
def test_unmapped_actions(action: str, code: str | None, coding: dict | None, suffix: str) -> None:
    extra = {"code": "unknown", "display": "Unknown"} if action == "fixed" else {}
    ev = evaluation(concept_maps=tables(action, **extra))
    flag = node("Q9", field=8)
    assert FUNCTIONS["map"](ev, "flags", flag) == code
    assert FUNCTIONS["coding"](ev, "flags", flag) == coding
    # reported once (a value read twice is reported once), as information by default
    assert [(i.severity, i.code, i.location) for i in ev.state.issues] == [
        ("information", "code-invalid", "OBX[1]-8")
    ]
    assert "'Q9'" in ev.state.issues[0].diagnostics
    assert suffix in ev.state.issues[0].diagnostics


def test_unmapped_error() -> None:
    ev = evaluation(concept_maps=tables("error", report="none"))
    assert FUNCTIONS["map"](ev, "flags", node("Q9", field=8)) is None
    ((issue),) = ev.state.issues
    assert (issue.severity, issue.code, issue.location) == ("error", "code-invalid", "OBX[1]-8")


@pytest.mark.parametrize(
    ("report", "severities"),
    [("none", []), ("information", ["information"]), ("warning", ["warning"])],
)
def test_report_level(report: str, severities: list[str]) -> None:
    ev = evaluation(concept_maps=tables("omit", report))
    FUNCTIONS["map"](ev, "flags", node("Q9", field=8))
    assert [i.severity for i in ev.state.issues] == severities


def test_display_and_system_lookups_do_not_report_again() -> None:
    ev = evaluation(concept_maps=tables("keep", "warning"))
    assert FUNCTIONS["map_display"](ev, "flags", node("Q9", field=8)) is None
    assert FUNCTIONS["map_system"](ev, "flags", node("Q9", field=8)) is None
    assert ev.state.issues == []


def test_empty_code_is_nothing() -> None:
    ev = evaluation(concept_maps=tables("error"))
    assert FUNCTIONS["map"](ev, "flags", node("", field=8)) is None
    assert ev.state.issues == []


# -- text and logic -------------------------------------------------------------------------------


def test_join_repetitions() -> None:
    notes = node("第一行~第二行~~第四行", "NTE", 3)
    assert call("join_repetitions", notes)[0] == "第一行\n第二行\n第四行"
    assert call("join_repetitions", notes, "; ")[0] == "第一行; 第二行; 第四行"
    assert call("join_repetitions", "plain")[0] == "plain"


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("eq", (" NM ", "NM"), True),
        ("ne", ("NM", "ST"), True),
        ("one_of", ("nm", "ST", "NM"), True),
        ("one_of", ("CE", "ST", "NM"), False),
        ("exists", ("", None, "x"), True),
        ("exists", ("", None, "  "), False),
        ("exists", ([],), False),
        ("exists", ({"a": 1},), True),
        ("empty", ("  ",), True),
        ("not", ("",), True),
        ("not", (False,), True),
        ("matches", ("AB12", "[A-Z]+\\d+"), True),
        ("matches", ("AB12x", "[A-Z]+\\d+"), False),
        ("concat", ("张", None, "三"), "张三"),
        ("join", ("-", "R1", "", "WBC", None, "1"), "R1-WBC-1"),
        ("trim", ("  a  ",), "a"),
        ("upper", ("st",), "ST"),
        ("text", (3.5,), "3.5"),
        ("first", (None, "", "b", "c"), "b"),
        ("when", (True, "v"), "v"),
        ("when", ("", "v"), None),
        ("all", (True, "x"), True),
        ("all", (True, ""), False),
        ("any", ("", False, "x"), True),
        ("facility_system", ("patient",), "https://example.cn/sid/test-lab/patient"),
        ("ref", ({"resourceType": "Patient", "id": "p1"},), {"reference": "Patient/p1"}),
        ("ref", (None,), None),
        (
            "refs",
            ([{"resourceType": "Specimen", "id": "s1"}, None],),
            [{"reference": "Specimen/s1"}],
        ),
    ],
)
def test_helpers(name: str, args: tuple, expected: Any) -> None:
    assert call(name, *args) == (expected, [])


def test_hash_id() -> None:
    from adapter.mapping.ids import deterministic_id

    assert call("hash_id", "Patient", "a", node("b"))[0] == deterministic_id("Patient", ["a", "b"])
    assert call("hash_id", "Patient", "a", "")[0] is None


def test_strip_prefix_and_starts_with() -> None:
    assert call("strip_prefix", "tel:+1(555)555-2003", "mailto:", "tel:")[0] == "+1(555)555-2003"
    assert call("strip_prefix", "mailto:a@example.cn", "tel:", "mailto:")[0] == "a@example.cn"
    assert call("strip_prefix", "0731-1234567", "tel:")[0] == "0731-1234567"
    assert call("strip_prefix", "tel:", "tel:")[0] is None
    assert call("starts_with", "tel:123", "tel:")[0] is True
    assert call("starts_with", "mailto:x", "tel:")[0] is False


def test_squash_makes_wrapped_text_one_line() -> None:
    wrapped = "\n" + " " * 18 + "湖南省青山县柳河镇大坪村一组\n" + " " * 18 + "2号\n" + " " * 16
    assert call("squash", wrapped)[0] == "湖南省青山县柳河镇大坪村一组 2号"
    assert call("squash", "a\t\tb  c")[0] == "a b c"
    assert call("squash", " \n ")[0] == ""  # nothing left: empty, which the engine leaves out
