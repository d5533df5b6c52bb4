"""adapter.hl7v2: MLLP framing, BOMs, UTF-16, whitespace, blank lines and line endings."""

from __future__ import annotations

import pytest

from adapter.hl7v2 import parse_hl7v2

SEGMENTS = [
    "MSH|^~\\&|HIS|乡镇卫生院|EMPI|县医院|20240101080000||ADT^A04|A0001|P|2.4",
    "PID|1||P9^^^HIS^MR||赵六^^^^^^L||19700505|F",
    "PV1|1|O",
]
TEXT = "\r".join(SEGMENTS)


def assert_read(raw: bytes, codec: str = "utf-8") -> None:
    msg = parse_hl7v2(raw)
    assert [s.name for s in msg.segments] == ["MSH", "PID", "PV1"]
    assert msg.message_type() == "ADT^A04"
    assert msg.segments[1].get(5) == "赵六"
    assert msg.segments[2].get(2) == "O"
    assert msg.text == TEXT
    assert msg.charset == codec


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators(sep: str) -> None:
    assert_read((sep.join(SEGMENTS) + sep).encode())
    assert_read(sep.join(SEGMENTS).encode())  # no separator after the last segment


def test_mixed_separators_and_blank_lines() -> None:
    raw = (SEGMENTS[0] + "\r\n\r\n" + SEGMENTS[1] + "\n  \t\n" + SEGMENTS[2] + "\r\r").encode()
    assert_read(raw)


def test_leading_and_trailing_whitespace() -> None:
    assert_read(("\r\n  \n\t" + TEXT + "\r\n   \n\n").encode())


def test_indented_segment_lines_are_tolerated() -> None:
    assert_read(("  " + SEGMENTS[0] + "\n  " + SEGMENTS[1] + "\n\t" + SEGMENTS[2]).encode())


def test_spaces_at_the_end_of_the_last_field_are_data() -> None:
    msg = parse_hl7v2((TEXT + "|备注  ").encode())
    assert msg.segments[2].get(3) == "备注  "


@pytest.mark.parametrize("end", [b"\x1c\x0d", b"\x1c", b"\x1c\x0d\n", b"\x1c\r  \r\n"])
def test_mllp_framing(end: bytes) -> None:
    assert_read(b"\x0b" + TEXT.encode() + b"\r" + end)


def test_mllp_framing_with_bom_inside_and_outside() -> None:
    assert_read(b"\x0b\xef\xbb\xbf" + TEXT.encode() + b"\r\x1c\r")
    assert_read(b"\xef\xbb\xbf\x0b" + TEXT.encode() + b"\r\x1c\r")


def test_utf8_bom() -> None:
    assert_read(b"\xef\xbb\xbf" + TEXT.encode())
    assert_read(b"\xef\xbb\xbf\r\n" + TEXT.encode() + b"\r\n")


@pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_bom(codec: str, bom: bytes) -> None:
    assert_read(bom + (TEXT + "\r\n").encode(codec), codec)
    # a single-byte MLLP frame around it
    assert_read(b"\x0b" + bom + (TEXT + "\r").encode(codec) + b"\x1c\r", codec)
    # the frame characters written in UTF-16 too
    assert_read(bom + ("\x0b" + TEXT + "\r\x1c\r").encode(codec), codec)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised(codec: str) -> None:
    assert_read(TEXT.encode(codec), codec)


def test_utf16_astral_characters_and_escapes() -> None:
    text = TEXT.replace("赵六", "𠮷䶮") + "\rNTE|1||\\X0041\\"
    msg = parse_hl7v2(b"\xff\xfe" + text.encode("utf-16-le"))
    assert msg.segments[1].get(5) == "𠮷䶮"
    # \X..\ bytes are decoded in the message charset: 0x00 0x41 in UTF-16-LE is U+4100
    assert msg.segments[3].get(3) == "\u4100"


def test_utf16_declared_other_charset_is_read_as_utf16_with_a_warning() -> None:
    text = SEGMENTS[0] + "|||||CHN|GB18030\r" + "\r".join(SEGMENTS[1:])
    msg = parse_hl7v2(b"\xff\xfe" + text.encode("utf-16-le"))
    assert msg.segments[1].get(5) == "赵六"
    assert msg.declared_charset == "GB18030"
    assert msg.charset == "utf-16-le"
    assert [i.location for i in msg.issues] == ["MSH-18"]
    assert msg.issues[0].severity == "warning"


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert_read(bytearray(TEXT.encode()))
    assert_read(memoryview(TEXT.encode()))


def test_str_input_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_hl7v2(TEXT)  # type: ignore[arg-type]
