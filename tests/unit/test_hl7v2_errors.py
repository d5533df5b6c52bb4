"""adapter.hl7v2: every bad input gives ParseError / InputTooLargeError with a location."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.errors import InputTooLargeError, MessageError, ParseError
from adapter.hl7v2 import Message, parse_hl7v2

GOOD = (
    "MSH|^~\\&|HIS|卫生院|LIS|县医院|20240101||ORU^R01|M1|P|2.5|||||CHN|UNICODE UTF-8\r"
    "PID|1||P1^^^HIS^MR~X1||张三\rOBX|1|ST|A^血红蛋白||135\\S\\1|g/L\r"
).encode()


def parse_error(raw: bytes) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    err = caught.value
    assert err.issues[0].location == err.location
    assert err.issues[0].code == "structure"
    return err


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"\r\n\r\n",
        b"\x0b\x1c\x0d",
        b"\xef\xbb\xbf",
        b"\xef\xbb\xbf\x0b  \x1c\r",
        b"\xff\xfe",
        b"\xff\xfe\r\x00",
    ],
)
def test_empty_input(raw: bytes) -> None:
    err = parse_error(raw)
    assert err.location == "message"
    assert "empty" in err.message


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b"PID|1||P1", "PID"),
        (b"msh|^~\\&|A", "msh"),
        (b"FHS|^~\\&|A\rBHS|^~\\&\r" + GOOD, "FHS"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "(3 characters"),
        ("张三|1".encode(), "(3 characters"),
        (b"MS", "MS"),
    ],
)
def test_no_msh_first(raw: bytes, found: str) -> None:
    err = parse_error(raw)
    assert err.location == "segment 1"
    assert (repr(found) if found.isalnum() and found.isascii() else found) in err.message


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b"MSH", "MSH-1"),
        (b"MSH\rPID|1", "MSH-1"),
        (b"MSHA^~\\&|X", "MSH-1"),  # a letter cannot separate fields
        (b"MSH ^~\\&|X", "MSH-1"),
        (b"MSH|", "MSH-2"),
        (b"MSH||A|B", "MSH-2"),
        (b"MSH|^~|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2"),  # too few encoding characters
        (b"MSH|^~\\&#@|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2"),  # too many
        (b"MSH|^^\\&|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2"),  # not distinct
        (b"MSH|^~a&|A|B|C|D|2024||ADT^A01|1|P|2.5", "MSH-2"),  # not punctuation
        (b"MSH|^~\\&|A|B|C|D|2024", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|2024||", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|2024||^A01|1|P|2.5", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01", "MSH-10"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01||P|2.5", "MSH-10"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P", "MSH-12"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|\rPID|1", "MSH-12"),
    ],
)
def test_msh_too_short_or_malformed(raw: bytes, location: str) -> None:
    err = parse_error(raw)
    assert err.location == location
    assert location in err.message


def test_missing_field_says_how_far_the_msh_goes() -> None:
    err = parse_error(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01")
    assert "ends after MSH-9" in err.message


@pytest.mark.parametrize(
    ("second_line", "shown"),
    [
        ("pid|1", "'pid'"),
        ("PI|1", "'PI'"),
        ("PIDX|1", "'PIDX'"),
        ("P-D|1", "(3 characters"),
        ("PID^1", "(5 characters"),
        # a line broken inside a name or ID number: its text is never repeated
        ("张三|1", "(2 characters"),
        ("11010519491231002X|1", "(18 characters"),
    ],
)
def test_invalid_segment_name(second_line: str, shown: str) -> None:
    raw = GOOD + ("PV1|1\r" + second_line + "\r").encode()
    err = parse_error(raw)
    assert err.location == "segment 5"
    assert f"invalid segment name {shown}" in err.message
    assert "张三" not in err.message and "1949" not in err.message


def test_blank_lines_do_not_count_as_segments_in_locations() -> None:
    raw = GOOD.replace(b"\r", b"\r\r\n") + b"\n\nbad|1\r"
    assert parse_error(raw).location == "segment 4"


def test_digits_are_allowed_in_segment_names() -> None:
    msg = parse_hl7v2(GOOD + b"Z01|a\rPV1|1")
    assert [s.name for s in msg.segments][-2:] == ["Z01", "PV1"]


def test_second_msh() -> None:
    err = parse_error(GOOD + GOOD)
    assert err.location == "segment 4"
    assert "MSH" in err.message


@pytest.mark.parametrize(
    ("garbage", "location"),
    [
        (b"PID|1|\x00\x01\x02", "segment 4"),
        (b"OBX|2|ED|X||\x1c\x0bMSH|^~\\&|2", "segment 4"),  # two MLLP frames
        (b"\x07", "segment 4"),
    ],
)
def test_binary_content(garbage: bytes, location: str) -> None:
    raw = GOOD + garbage
    err = parse_error(raw)
    assert err.location == location
    offset = raw.index(garbage.lstrip(b"PIDOBX|12EDX")[:1])
    assert f"byte offset {offset}" in err.message


def test_binary_content_in_gb18030_and_utf16() -> None:
    raw = GOOD.replace(b"UNICODE UTF-8", b"GB18030").decode().encode("gb18030") + b"NTE|\x00"
    assert parse_error(raw).location == "segment 4"
    raw16 = b"\xff\xfe" + (GOOD.decode() + "NTE|\x00").encode("utf-16-le")
    err = parse_error(raw16)
    assert err.location == "segment 4"
    assert f"byte offset {len(raw16) - 2}" in err.message


def test_odd_utf16() -> None:
    err = parse_error(b"\xff\xfe" + "MSH|^~\\&|".encode("utf-16-le") + b"\x00")
    assert err.location == "message"


def test_size_limit() -> None:
    assert parse_hl7v2(GOOD, max_bytes=len(GOOD)).control_id() == "M1"
    with pytest.raises(InputTooLargeError) as caught:
        parse_hl7v2(GOOD, max_bytes=len(GOOD) - 1)
    assert isinstance(caught.value, MessageError)
    assert caught.value.location == "message"
    assert str(len(GOOD)) in caught.value.message
    assert caught.value.issues[0].code == "too-long"


def test_errors_are_message_errors() -> None:
    assert issubclass(ParseError, MessageError)


# -- fuzzing: never any other exception --------------------------------------------------


def read_everything(msg: Message) -> None:
    """Touch every accessor so lazy splitting and unescaping run too."""
    msg.message_type(), msg.control_id(), msg.version(), msg.text
    for seg in msg.segments:
        assert msg.segments_named(seg.name)
        seg.location(1, 1, 1, 1)
        for f in range(0, seg.field_count() + 2):
            seg.raw(f)
            for r in range(0, seg.repetitions(f) + 2):
                seg.components(f, r)
                for c in range(1, 4):
                    seg.subcomponents(f, r, c)
                    for s in range(1, 3):
                        assert isinstance(seg.get(f, r, c, s), str)
        for pos in seg.populated():
            assert seg.get(*pos)


def parse_or_error(raw: bytes, max_bytes: int | None = None) -> None:
    try:
        msg = parse_hl7v2(raw, max_bytes=max_bytes)
    except (ParseError, InputTooLargeError) as exc:
        assert exc.location
        return
    read_everything(msg)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes(raw: bytes) -> None:
    parse_or_error(raw)


header_prefixes = st.sampled_from(
    [
        b"MSH|^~\\&|",
        b"\x0bMSH|^~\\&|",
        b"\xef\xbb\xbfMSH|^~\\&|",
        b"MSH#$*@%#",
        b"MSH|^~\\&#|",
        b"\xff\xfeM\x00S\x00H\x00|\x00",
        b"MSH",
        b"MSH|",
        GOOD[:60],
    ]
)
hl7ish = st.lists(
    st.sampled_from(
        [
            b"|",
            b"^",
            b"~",
            b"\\",
            b"&",
            b"#",
            b"\r",
            b"\n",
            b"\r\n",
            b"\x1c",
            b"\x0b",
            b"PID",
            b"OBX",
            b"MSH",
            b"\\X",
            b"\\XE5BC",
            b"\\.br\\",
            b"\\F\\",
            b"ORU^R01",
            b"2.5",
            b"UNICODE UTF-8",
            b"GB18030",
            b"\xe5\xbc\xa0",
            b"\xd5\xc5",
            b"\x95\x34\xb2\x35",
            b"\xff",
            b"\x00",
            b"A",
            b"1",
            b" ",
        ]
    ),
    max_size=60,
).map(b"".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_prefixes, hl7ish, st.one_of(st.none(), st.integers(0, 400)))
def test_fuzz_hl7_like_bytes(prefix: bytes, body: bytes, max_bytes: int | None) -> None:
    parse_or_error(prefix + body, max_bytes)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_good_message(data: st.DataObject) -> None:
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    parse_or_error(bytes(raw))
