"""adapter.hl7v2: MSH-18 character sets, undeclared detection, wrong declarations."""

from __future__ import annotations

import re

import pytest

from adapter.errors import ParseError
from adapter.hl7v2 import CHARSET_TABLE, codec_for, parse_hl7v2

NAMES = ["张三", "𠮷", "䶮", "血红蛋白", "镕"]  # 𠮷: outside the BMP; 䶮, 镕: outside GB2312


def message(
    charset: str | None,
    name: str = "张三",
    item: str = "血红蛋白",
    msh4: str = "县医院",
    msh6: str = "平台",
) -> str:
    msh = f"MSH|^~\\&|LIS|{msh4}|HIS|{msh6}|20240101||ORU^R01|M1|P|2.5"
    if charset is not None:
        msh += f"|||||CHN|{charset}"
    return "\r".join(
        [
            msh,
            f"PID|1||P1^^^HIS^MR||{name}",
            f"OBX|1|NM|718-7^{item}^LN||135|g/L",
        ]
    )


def read_names(raw: bytes) -> tuple[str, str]:
    msg = parse_hl7v2(raw)
    return msg.segments[1].get(5), msg.segments[2].get(3, 1, 2)


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("GB18030", "gb18030"),
        ("GBK", "gb18030"),
        ("GB2312", "gb18030"),
        ("ASCII", "ascii"),
        ("8859/1", "latin-1"),
        ("unicode utf-8", "utf-8"),
        ("gb18030-2005", "gb18030"),
        (" GB 2312 ", "gb18030"),
    ],
)
def test_charset_table(declared: str, codec: str) -> None:
    assert codec_for(declared) == codec


def test_every_table_codec_exists() -> None:
    for codec in set(CHARSET_TABLE.values()):
        "HL7".encode(codec)


@pytest.mark.parametrize("name", NAMES)
def test_utf8_declared(name: str) -> None:
    raw = message("UNICODE UTF-8", name).encode("utf-8")
    assert read_names(raw) == (name, "血红蛋白")
    msg = parse_hl7v2(raw)
    assert (msg.charset, msg.declared_charset) == ("utf-8", "UNICODE UTF-8")


@pytest.mark.parametrize("declared", ["GB 18030-2000", "GB18030", "GBK", "GB2312"])
@pytest.mark.parametrize("name", NAMES)
def test_gb_family_declared(declared: str, name: str) -> None:
    raw = message(declared, name).encode("gb18030")
    assert read_names(raw) == (name, "血红蛋白")
    msg = parse_hl7v2(raw)
    assert msg.charset == "gb18030"
    assert msg.declared_charset == declared
    assert msg.msh.get(4) == "县医院"


def test_gbk_bytes_from_the_gbk_codec_read_under_a_gb2312_declaration() -> None:
    raw = message("GB2312", "朱镕基").encode("gbk")  # 镕 is GBK, not GB2312
    assert read_names(raw)[0] == "朱镕基"


def test_four_byte_gb18030_character() -> None:
    assert "𠮷".encode("gb18030") == b"\x95\x34\xb2\x35"
    raw = message("GB18030", "𠮷").encode("gb18030")
    assert read_names(raw)[0] == "𠮷"


def test_undeclared_gb18030_bytes_are_detected() -> None:
    for name in NAMES:
        raw = message(None, name).encode("gb18030")
        msg = parse_hl7v2(raw)
        assert msg.charset == "gb18030"
        assert msg.declared_charset is None
        assert read_names(raw) == (name, "血红蛋白")


def test_undeclared_utf8_and_empty_msh18() -> None:
    for raw in (message(None).encode(), message("").encode(), message("  ").encode()):
        msg = parse_hl7v2(raw)
        assert msg.charset == "utf-8"
        assert msg.declared_charset is None
        assert msg.segments[1].get(5) == "张三"


def test_undeclared_ascii_reads_as_utf8() -> None:
    msg = parse_hl7v2(message(None, "ZHANG^SAN", "HGB", "CountyHosp", "HIE").encode("ascii"))
    assert msg.charset == "utf-8"
    assert msg.segments[1].get(5, 1, 2) == "SAN"


def test_latin1_declared() -> None:
    raw = message("8859/1", "Müller", "Hämoglobin", "Spital", "Zürich").encode("latin-1")
    assert read_names(raw) == ("Müller", "Hämoglobin")


def test_first_repetition_of_msh18_is_the_message_charset() -> None:
    raw = message("UNICODE UTF-8~GB18030", "张三").encode("utf-8")
    msg = parse_hl7v2(raw)
    assert msg.charset == "utf-8" and msg.declared_charset == "UNICODE UTF-8"


def test_utf8_declared_but_gb18030_bytes() -> None:
    raw = message("UNICODE UTF-8", "张三").encode("gb18030")
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    err = caught.value
    assert err.location == "MSH-18"
    assert err.issues[0].location == "MSH-18"
    assert "UNICODE UTF-8" in err.message
    first_bad = raw.index("县".encode("gb18030"))
    assert f"offset {first_bad}" in err.message


def test_offset_counts_from_the_start_of_the_input() -> None:
    raw = b"\x0b\xef\xbb\xbf" + message("UTF-8", "张三").encode("gb18030")
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert f"offset {raw.index('县'.encode('gb18030'))}" in caught.value.message


def test_ascii_declared_but_chinese_bytes() -> None:
    raw = message("ASCII", "张三", "HGB", "CountyHosp", "HIE").encode("utf-8")
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "MSH-18"
    assert f"offset {raw.index('张'.encode())}" in caught.value.message


def test_gb18030_declared_but_invalid_bytes() -> None:
    raw = message("GB18030", "张三").encode("gb18030").replace(b"\xd5\xc5", b"\xd5\xff")
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "MSH-18"
    assert "gb18030" in caught.value.message


def test_gb_declared_but_utf8_content_gives_a_warning() -> None:
    # UTF-8 张三 (e5 bc a0 e4 b8 89) is also a valid GB18030 byte sequence: mojibake
    raw = message("GB18030", "张三", "HGB", "CountyHosp", "HIE").encode("utf-8")
    msg = parse_hl7v2(raw)  # read as declared (the raw bytes are kept by the pipeline)
    assert msg.charset == "gb18030"
    assert len(msg.issues) == 1
    assert msg.issues[0].severity == "warning"
    assert msg.issues[0].location == "MSH-18"
    # genuine GB18030 gives no warning
    assert parse_hl7v2(message("GB18030", "张三").encode("gb18030")).issues == []


def test_undeclared_neither_utf8_nor_gb18030() -> None:
    raw = message(None, "张三").encode("utf-8") + b"|\xff\xfe"
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert caught.value.location == "MSH-18"
    assert "UTF-8" in caught.value.message and "GB18030" in caught.value.message
    assert f"offset {len(raw) - 2}" in caught.value.message


@pytest.mark.parametrize("value", ["KLINGON", "UTF-7", "ISO IR6 ", "CHN"])
def test_unknown_charset_is_named(value: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(message(value, "ZHANG").encode())
    assert caught.value.location == "MSH-18"
    assert repr(value.strip()) in caught.value.message


def test_utf16_declared_for_single_byte_message() -> None:
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(message("UNICODE UTF-16", "ZHANG", "HGB", "H").encode())
    assert caught.value.location == "MSH-18"


@pytest.mark.parametrize("declared", ["GBK", ""])
def test_gbk_character_with_a_separator_byte_in_msh(declared: str) -> None:
    # 億 is 0x83 0x7C in GBK: read byte-wise, its second byte looks like a field separator
    assert "億".encode("gbk")[1:] == b"|"
    raw = message(declared, "张三", "血红蛋白", msh4="億康医院").encode("gbk")
    msg = parse_hl7v2(raw)
    assert msg.charset == "gb18030"
    assert msg.declared_charset == (declared or None)
    assert msg.msh.get(4) == "億康医院"
    assert read_names(raw) == ("张三", "血红蛋白")


def test_hex_escape_is_decoded_in_the_message_charset() -> None:
    text = message("GB18030", "\\XD5C5\\三")
    msg = parse_hl7v2(text.encode("gb18030"))
    assert msg.segments[1].get(5) == "张三"
    msg = parse_hl7v2(message("UNICODE UTF-8", "\\XE5BCA0\\三").encode())
    assert msg.segments[1].get(5) == "张三"
    # the same bytes mean something else in another charset: kept as written when invalid
    msg = parse_hl7v2(message("UNICODE UTF-8", "\\XD5C5\\三").encode())
    assert msg.segments[1].get(5) == "\\XD5C5\\三"


def test_error_messages_do_not_contain_the_patient_name() -> None:
    raw = message("UNICODE UTF-8", "张三").encode("gb18030")
    with pytest.raises(ParseError) as caught:
        parse_hl7v2(raw)
    assert "张" not in caught.value.message
    assert not re.search("d5 c5", caught.value.message)
