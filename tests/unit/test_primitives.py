"""FHIR R4 primitive checks: valid and invalid examples per type.

The lexical cases are cross-checked against the patterns of the official R4 JSON schema
(tests/data/fhir-r4-schema) where that schema carries one, so a disagreement between our
expressions and the spec's shows up here.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from adapter.fhir import primitives as p
from adapter.fhir.primitives import (
    MAX_STRING_BYTES,
    check_primitive,
    is_plain_string,
    is_valid_string,
)

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-schema" / "fhir.schema.json"

# type -> (lexical check, valid strings, invalid strings)
LEXICAL: dict[str, tuple[Any, list[str], list[str]]] = {
    "date": (
        p.is_valid_date,
        ["2026", "2026-11", "2026-11-25", "2024-02-29", "0001-01-01"],
        [
            "26",
            "2026-1",
            "2026-13",
            "2026-11-32",
            "2026-02-30",
            "2025-02-29",
            "20261125",
            "0000",
            "2026-11-25T10:00:00Z",
            "2026-11-25 ",
            "",
        ],
    ),
    "dateTime": (
        p.is_valid_date_time,
        [
            "2026",
            "2026-11",
            "2026-11-25",
            "2026-11-25T13:40:00+08:00",
            "2026-11-25T13:40:00.123Z",
            "2026-11-25T23:59:60Z",
            "2026-11-25T00:00:00-14:00",
        ],
        [
            "2026-11-25T13:40:00",
            "2026-11-25T13:40+08:00",
            "2026-11-25T24:00:00Z",
            "2026-11-25T13:40:00+0800",
            "2026-11-25T13:40:00+15:00",
            "20261125134000",
            "2026-11-25 13:40:00+08:00",
            "2026-02-30T00:00:00Z",
            "2026-11-25T13:40:00Z\n",
        ],
    ),
    "instant": (
        p.is_valid_instant,
        ["2026-11-25T13:40:00+08:00", "2026-11-25T05:40:00.5Z"],
        ["2026-11-25", "2026-11-25T13:40:00", "2026-11", "2026-04-31T00:00:00Z"],
    ),
    "time": (
        p.is_valid_time,
        ["00:00:00", "13:40:00", "23:59:59.999"],
        ["24:00:00", "13:40", "13:40:00Z", "1:02:03", "13:60:00"],
    ),
    "id": (
        p.is_valid_id,
        ["a", "pat-1.2", "A" * 64, "3f2a9c1e-5b7d-4e2a-9c3d-1a2b3c4d5e6f"],
        ["", "A" * 65, "pat_1", "pat 1", "病人1", "a/b"],
    ),
    "code": (
        p.is_valid_code,
        ["final", "mmol/L", "10x9/L", "two words", "血糖"],
        ["", " final", "final ", "two  words", "\t"],
    ),
    "uri": (
        p.is_valid_uri,
        ["http://loinc.org", "urn:oid:2.16.156", "urn:uuid:abc", "Patient/1"],
        ["", "http://x y", "a\tb"],
    ),
    "oid": (
        p.is_valid_oid,
        ["urn:oid:2.16.156.10011.1.1", "urn:oid:1.0"],
        ["2.16.156", "urn:oid:3.1", "urn:oid:2", "urn:oid:2.01"],
    ),
    "uuid": (
        p.is_valid_uuid,
        ["urn:uuid:3f2a9c1e-5b7d-4e2a-9c3d-1a2b3c4d5e6f"],
        ["3f2a9c1e-5b7d-4e2a-9c3d-1a2b3c4d5e6f", "urn:uuid:3F2A9C1E-5B7D-4E2A-9C3D-1A2B3C4D5E6F"],
    ),
    "decimal": (
        p.is_valid_decimal,
        ["0", "6.1", "-0.5", "1.50", "1e3", "6.02E+23", "-3.2e-5"],
        ["", ".5", "5.", "+1", "01", "1,5", "NaN", "Infinity", "1 ", "６.1"],
    ),
    "integer": (
        p.is_valid_integer,
        ["0", "-1", "+7", "2147483647", "-2147483648"],
        ["", "-0", "01", "1.0", "2147483648", "-2147483649", "1e3"],
    ),
    "positiveInt": (
        p.is_valid_positive_int,
        ["1", "+1", "2147483647"],
        ["0", "-1", "2147483648", "01"],
    ),
    "unsignedInt": (
        p.is_valid_unsigned_int,
        ["0", "1", "2147483647"],
        ["-1", "00", "2147483648", "+1"],
    ),
    "boolean": (p.is_valid_boolean, ["true", "false"], ["True", "1", "yes", "", "truefalse"]),
    "base64Binary": (
        p.is_valid_base64_binary,
        ["aGVsbG8=", "aGVs bG8="],
        ["aGVsbG8", "a$==", ""],
    ),
    "string": (
        p.is_valid_string,
        ["张三", "line\nbreak\ttab\r", " padded "],
        ["", "   ", "\n", "bell\x07", "nul\x00", "esc\x1b[0m", "c1\x85"],
    ),
}

CASES = [
    (type_name, check, text, expected)
    for type_name, (check, valid, invalid) in LEXICAL.items()
    for texts, expected in ((valid, True), (invalid, False))
    for text in texts
]


@pytest.mark.parametrize(
    ("type_name", "check", "text", "expected"),
    CASES,
    ids=[f"{t}-{'ok' if e else 'bad'}-{x!r}" for t, _, x, e in CASES],
)
def test_lexical_forms(type_name: str, check: Any, text: str, expected: bool) -> None:
    assert check(text) is expected


@cache
def _schema_pattern(type_name: str) -> re.Pattern[str] | None:
    definition = json.loads(SCHEMA.read_text(encoding="utf-8"))["definitions"][type_name]
    pattern = definition.get("pattern")
    return re.compile(pattern) if pattern else None


# Types whose schema pattern is a faithful statement of the lexical rule. Left out:
# integer/positiveInt/unsignedInt/boolean (the schema's patterns are unanchored
# alternations such as "^[0]|([1-9][0-9]*)$", and JSON numbers are checked by type anyway),
# decimal (type number), string/markdown (the schema allows anything non-empty).
SCHEMA_COMPARABLE = ["date", "dateTime", "instant", "time", "id", "code", "oid", "uuid"]


@pytest.mark.parametrize("type_name", SCHEMA_COMPARABLE)
def test_lexical_rules_agree_with_the_official_schema(type_name: str) -> None:
    pattern = _schema_pattern(type_name)
    assert pattern is not None
    check, valid, invalid = LEXICAL[type_name]
    for text in valid + invalid:
        # The schema patterns cannot know the calendar (2026-02-30) and use Unicode-wide
        # \s; our checks are the same or stricter, never looser.
        if check(text):
            assert pattern.search(text), f"we accept {text!r} that the schema refuses"


def test_schema_patterns_accept_our_valid_examples() -> None:
    for type_name in SCHEMA_COMPARABLE:
        pattern = _schema_pattern(type_name)
        assert pattern is not None
        for text in LEXICAL[type_name][1]:
            assert pattern.search(text), (type_name, text)


# ---- check_primitive: JSON values --------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("boolean", True),
        ("boolean", False),
        ("integer", -5),
        ("integer", 0),
        ("unsignedInt", 0),
        ("positiveInt", 20),
        ("decimal", 6.1),
        ("decimal", 7),
        ("decimal", Decimal("6.10")),
        ("string", "血糖偏高"),
        ("markdown", "**bold**\nnext"),
        ("dateTime", "2026-11-25T13:40:00+08:00"),
        ("date", "1990-03-07"),
        ("instant", "2026-11-25T05:40:00Z"),
        ("time", "08:30:00"),
        ("id", "obs-1"),
        ("code", "final"),
        ("uri", "http://loinc.org"),
        ("url", "https://fhir.example.cn/fhir"),
        ("canonical", "http://hl7.org/fhir/StructureDefinition/Patient|4.0.1"),
        ("oid", "urn:oid:2.16.156.10011.1.1"),
        ("uuid", "urn:uuid:3f2a9c1e-5b7d-4e2a-9c3d-1a2b3c4d5e6f"),
        ("base64Binary", "aGVsbG8="),
    ],
)
def test_check_primitive_accepts(type_name: str, value: Any) -> None:
    assert check_primitive(type_name, value) is None


@pytest.mark.parametrize(
    ("type_name", "value", "reason"),
    [
        ("boolean", "true", "JSON true or false, not a str"),
        ("boolean", 1, "not a int"),
        ("integer", True, "not a boolean"),
        ("integer", "5", "JSON integer, not a str"),
        ("integer", 2**31, "between"),
        ("integer", 1.0, "not a float"),
        ("positiveInt", 0, "between 1 and"),
        ("unsignedInt", -1, "between 0 and"),
        ("decimal", "6.1", "JSON number, not a str"),
        ("decimal", False, "not a boolean"),
        ("decimal", float("nan"), "finite"),
        ("decimal", float("inf"), "finite"),
        ("decimal", Decimal("NaN"), "finite"),
        ("string", "", "empty"),
        ("string", " \t ", "whitespace"),
        ("string", "a\x0bb", "control character"),
        ("string", 5, "JSON string, not a int"),
        ("string", "x" * (1024 * 1024 + 1), "1 MiB"),
        ("dateTime", "20261125134000", "not a FHIR dateTime"),
        ("dateTime", "2026-11-25T13:40:00", "time zone"),
        ("date", "2026-02-29", "not a FHIR date"),
        ("instant", "2026-11-25", "not a FHIR instant"),
        ("time", "8:30", "not a FHIR time"),
        ("id", "has space", "not a FHIR id"),
        ("code", " final", "not a FHIR code"),
        ("uri", "", "not a FHIR uri"),
        ("oid", "1.2.3", "not a FHIR oid"),
        ("uuid", "urn:uuid:x", "not a FHIR uuid"),
        ("code", None, "not a NoneType"),
    ],
)
def test_check_primitive_rejects_with_a_reason(type_name: str, value: Any, reason: str) -> None:
    problem = check_primitive(type_name, value)
    assert problem is not None
    assert reason in problem


def test_reason_never_repeats_the_value() -> None:
    secret = "张三  110101199003071234"  # a name and a national ID: must not reach issues
    for type_name in ("id", "dateTime", "code", "integer"):
        problem = check_primitive(type_name, secret)
        assert problem is not None and secret not in problem


def test_multibyte_string_length_is_measured_in_utf8_bytes() -> None:
    # 300,000 Chinese characters are 900,000 bytes (fine); 400,000 are 1.2 MB (too long).
    assert check_primitive("string", "血" * 300_000) is None
    assert check_primitive("string", "血" * 400_000) == "string is longer than 1 MiB"


def test_unknown_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Quantity"):
        check_primitive("Quantity", {})


def test_every_listed_type_is_checked() -> None:
    expected = {
        "boolean",
        "integer",
        "unsignedInt",
        "positiveInt",
        "decimal",
        "string",
        "markdown",
        "date",
        "dateTime",
        "instant",
        "time",
        "id",
        "code",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "base64Binary",
    }
    assert expected == p.PRIMITIVE_TYPES


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\u3000",
        "\t\r\n",
        "a\x00b",
        "x\x85",
        "\x7f",
        "张秀英",
        " padded ",
        "a\tb",
        "x" * 300,
    ],
)
def test_the_quick_string_answer_never_passes_what_the_full_check_refuses(text: str) -> None:
    # is_plain_string is checks.py's shortcut: True must mean is_valid_string is True too
    if is_plain_string(text):
        assert is_valid_string(text)
    assert is_plain_string(text) == is_valid_string(text)  # the same answer below 256 KiB


def test_a_long_string_is_left_to_the_full_check() -> None:
    text = "测" * (MAX_STRING_BYTES // 4 + 1)
    assert not is_plain_string(text)
    assert is_valid_string(text) == (len(text.encode()) <= MAX_STRING_BYTES)
