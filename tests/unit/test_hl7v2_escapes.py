"""adapter.hl7v2: escape sequences, the escape() helper and round trips (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.hl7v2 import Delimiters, escape, parse_hl7v2, unescape

UTF8 = Delimiters("|", "^~\\&", "utf-8")


def read_obx5(
    value: str,
    charset: str = "UNICODE UTF-8",
    codec: str = "utf-8",
    msh2: str = "^~\\&",
    fs: str = "|",
) -> str:
    raw = (
        f"MSH{fs}{msh2}{fs}A{fs}B{fs}C{fs}D{fs}20240101{fs}{fs}ORU^R01{fs}M1{fs}P{fs}2.5"
        f"{fs * 6}{charset}\rOBX{fs}1{fs}ST{fs}X{fs}{fs}{value}{fs}END"
    )
    msg = parse_hl7v2(raw.encode(codec))
    assert msg.segments[1].get(6) == "END"
    return msg.segments[1].get(5)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("\\E\\F\\E\\", "\\F\\"),  # escaped escape characters are not escape sequences
        ("一\\.br\\二", "一\n二"),
        ("\\H\\重要\\N\\", "重要"),
        ("正常\\H\\高\\N\\值", "正常高值"),
        ("\\XE5BCA0\\三", "张三"),
        ("\\Xe5bca0\\三", "张三"),  # hex digits in either case
        ("\\XE5BC\\\\XA0\\三", "张三"),  # one character split over two \X sequences
        ("\\XF0A0AEB7\\", "𠮷"),
        ("\\X41\\\\X42\\C", "ABC"),
        ("\\X0D\\", "\r"),
        ("\\XE5BC A0\\", "张"),  # spaces between hex digits are tolerated
        ("\\XE5BC\\", "\\XE5BC\\"),  # incomplete UTF-8: kept as written
        ("\\XE5B\\", "\\XE5B\\"),  # odd number of hex digits
        ("\\XZZ\\", "\\XZZ\\"),
        ("\\X\\", "\\X\\"),
        ("\\Zvendor\\x", "\\Zvendor\\x"),  # unknown escapes are kept literally
        ("\\.sp\\", "\\.sp\\"),
        ("\\C2842\\", "\\C2842\\"),
        ("a\\b", "a\\b"),  # a lone escape character without its closing partner
        ("a\\F\\b\\", "a|b\\"),
        ("\\", "\\"),
        ("\\\\", "\\\\"),
        ("x\\F\\\\S\\y", "x|^y"),
        ("𠮷䶮", "𠮷䶮"),
    ],
)
def test_escape_sequences(written: str, read: str) -> None:
    assert read_obx5(written) == read
    assert unescape(written, UTF8) == read


def test_escapes_use_the_message_characters() -> None:
    value = "a!F!b!S!c!R!d!T!e!E!f \\F\\"
    assert read_obx5(value, msh2="^~!&") == "a|b^c~d&e!f \\F\\"


def test_hex_escapes_in_a_gb18030_message() -> None:
    assert read_obx5("\\XD1AAbaec\\", "GB18030", "gb18030") == "血红"
    assert read_obx5("\\X9534B235\\", "GB18030", "gb18030") == "𠮷"


def test_escapes_are_kept_in_raw_and_only_resolved_on_get() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|M1|P|2.5\rOBX|1|ST|X||a\\S\\b^c\\T\\d&e"
    obx = parse_hl7v2(raw).segments[1]
    assert obx.raw(5) == "a\\S\\b^c\\T\\d&e"
    assert obx.get(5) == "a^b"  # the escaped ^ is data, not a component separator
    assert obx.get(5, 1, 2) == "c&d"
    assert obx.get(5, 1, 2, 2) == "e"
    assert obx.components(5) == ["a^b", "c&d"]
    assert obx.subcomponents(5, 1, 2) == ["c&d", "e"]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a|b^c~d&e\\f", "a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f"),
        ("一\n二", "一\\.br\\二"),
        ("a\rb", "a\\X0D\\b"),
        ("\x00\x1f\x7f", "\\X00\\\\X1F\\\\X7F\\"),
        ("tab\there", "tab\there"),
        ("张三 𠮷", "张三 𠮷"),
    ],
)
def test_escape_helper(value: str, escaped: str) -> None:
    assert escape(value) == escaped
    assert unescape(escaped, UTF8) == value


def test_escape_with_other_delimiters_and_truncation() -> None:
    d = Delimiters("#", "$*@%!", "gb18030")
    assert escape("#$*@%!|^", d) == "@F@@S@@R@@E@@T@@P@|^"
    assert unescape(escape("#$*@%!|^", d), d) == "#$*@%!|^"


# -- properties --------------------------------------------------------------------------

SPECIAL = "|^~\\&#$*@%!\r\n\t\x00\x0b\x1c "
CHINESE = "张三李四王五血红蛋白葡萄糖𠮷䶮镕億亅"
values = st.text(
    alphabet=st.one_of(
        st.sampled_from(SPECIAL),
        st.sampled_from(CHINESE),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=40,
)
delimiter_sets = st.sampled_from(
    [
        ("|", "^~\\&"),
        ("|", "^~\\&#"),
        ("#", "$*@%"),
        ("!", "^~\\&"),
        ("|", "^~!&"),
    ]
)
charsets = st.sampled_from(
    [("UNICODE UTF-8", "utf-8"), ("GB18030", "gb18030"), (None, "utf-8"), (None, "gb18030")]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), delimiter_sets, charsets)
def test_property_round_trip(
    field_values: list[str], delims: tuple[str, str], charset: tuple[str | None, str]
) -> None:
    fs, enc = delims
    declared, codec = charset
    d = Delimiters(fs, enc, codec)
    msh = fs.join(
        [
            "MSH",
            enc,
            "A",
            "B",
            "C",
            "D",
            "20240101",
            "",
            "ORU^R01",
            "M1",
            "P",
            "2.5",
            "",
            "",
            "",
            "",
            "",
            declared or "",
        ]
    )
    body = fs.join(["ZZZ", *(escape(v, d) for v in field_values), "END"])
    raw = (msh + "\r" + body + "\r").encode(codec)
    msg = parse_hl7v2(raw)
    if declared is None and codec == "gb18030":
        # undeclared: UTF-8 is tried first; GB18030 text may happen to be valid UTF-8
        assert msg.charset in ("utf-8", "gb18030")
        if msg.charset == "utf-8":
            return
    assert msg.charset == codec
    zzz = msg.segments[1]
    assert [zzz.get(i) for i in range(1, len(field_values) + 1)] == field_values
    assert zzz.get(len(field_values) + 1) == "END"
    for i, v in enumerate(field_values, 1):
        assert zzz.repetitions(i) == (1 if v else 0)
        assert zzz.components(i) == ([v] if v else [])


def naive_tree(value: str, d: Delimiters) -> list[list[list[str]]]:
    """A reference reading: split everything, unescape every leaf."""
    if not value:
        return []
    return [
        [[unescape(s, d) for s in c.split(d.subcomponent)] for c in r.split(d.component)]
        for r in value.split(d.repetition)
    ]


structured = st.lists(  # repetitions
    st.lists(  # components
        st.lists(values, min_size=1, max_size=3),  # subcomponents
        min_size=1,
        max_size=4,
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(structured, min_size=1, max_size=4), st.booleans())
def test_property_structured_fields_match_a_reference_reading(
    fields: list[list[list[list[str]]]], flat_segment: bool
) -> None:
    d = UTF8
    written = [
        "~".join("^".join("&".join(escape(s, d) for s in comp) for comp in rep) for rep in f)
        for f in fields
    ]
    # a repetition elsewhere in the segment turns off the fast path for plain fields
    extra = [] if flat_segment else ["x~y"]
    raw = (
        "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|M1|P|2.5\r"
        + "|".join(["ZZZ", *written, *extra, "END"])
        + "\r"
    ).encode()
    seg = parse_hl7v2(raw).segments[1]
    for i, w in enumerate(written, 1):
        tree = naive_tree(w, d)
        for r in range(0, len(tree) + 2):
            for c in range(0, 6):
                for s in range(0, 5):
                    try:
                        expected = tree[r - 1][c - 1][s - 1] if min(r, c, s) > 0 else ""
                    except IndexError:
                        expected = ""
                    assert seg.get(i, r, c, s) == expected, (i, r, c, s)
        assert seg.raw(i) == w
        for r in range(1, len(tree) + 1):
            assert seg.components(i, r) == [c[0] for c in tree[r - 1]]
    positions = list(seg.populated())
    assert all(seg.get(*p) for p in positions)
