"""Bounds on the shape of one input (adapter/input_limits.py): over a limit is a located
``too-costly`` ParseError, at the limit is read as usual."""

from __future__ import annotations

import json

import pytest

from adapter.errors import ParseError
from adapter.hl7v2 import parse_hl7v2
from adapter.input_limits import InputLimits
from adapter.mapping.json_paths import parse_json
from adapter.settings import Settings

MSH = "MSH|^~\\&|LIS|H1|HIS|H2|20240101||ORU^R01|M1|P|2.5.1\r"
SMALL = InputLimits(segments=5, fields=20, repetitions=4, components=6, nesting_depth=3)


def over(raw: str, limits: InputLimits = SMALL) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw.encode(), limits=limits)
    issue = caught.value.issues[0]
    assert issue.code == "too-costly"
    assert issue.location
    return caught.value


def test_segments() -> None:
    assert len(parse_hl7v2((MSH + "NTE|1\r" * 4).encode(), limits=SMALL).segments) == 5
    err = over(MSH + "NTE|1\r" * 5)
    assert err.location == "segment 6"
    assert "ADAPTER_MAX_SEGMENTS" in err.message


def test_a_million_tiny_segments_stop_at_the_default_limit() -> None:
    err = over(MSH + "ZZZ\r" * 1_000_000, InputLimits())
    assert err.location == "segment 10001"


def test_fields() -> None:
    parse_hl7v2((MSH + "ZXX" + "|a" * 20 + "\r").encode(), limits=SMALL)
    assert over(MSH + "ZXX" + "|a" * 21 + "\r").location == "ZXX[1]-21"


def test_repetitions() -> None:
    parse_hl7v2((MSH + "OBX|1|ST|C||" + "~".join("v" * 4) + "\r").encode(), limits=SMALL)
    err = over(MSH + "OBX|1|ST|C||" + "~".join("v" * 5) + "\r")
    assert err.location == "OBX[1]-5"
    assert "5 repetitions" in err.message


def test_components_and_subcomponents() -> None:
    parse_hl7v2((MSH + "PID|1||" + "^".join("c" * 6) + "\r").encode(), limits=SMALL)
    assert over(MSH + "PID|1||a~" + "^".join("c" * 7) + "\r").location == "PID[1]-3[2]"
    assert over(MSH + "PID|1||a^" + "&".join("s" * 7) + "\r").location == "PID[1]-3[1].2"


def test_msh_separators_do_not_count() -> None:
    limits = InputLimits(components=2, repetitions=2)
    parse_hl7v2(MSH.encode(), limits=limits)  # MSH-2 "^~\&" is not a field of components


def test_json_nesting_depth() -> None:
    parse_json(json.dumps({"a": {"b": [1]}}).encode(), max_depth=3)
    with pytest.raises(ParseError) as caught:
        parse_json(json.dumps({"a": {"b": [[1]]}}).encode(), max_depth=3)
    assert caught.value.issues[0].code == "too-costly"
    assert caught.value.location == "$.a.b[0]"


def test_limits_come_from_settings() -> None:
    limits = InputLimits.from_settings(Settings(max_segments=7, max_nesting_depth=9))
    assert (limits.segments, limits.nesting_depth) == (7, 9)
    assert limits.repetitions == InputLimits().repetitions
