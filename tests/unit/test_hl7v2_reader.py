"""adapter.hl7v2: reading fields, repetitions, components; locations; message helpers."""

from __future__ import annotations

import pytest

from adapter.hl7v2 import Message, parse_hl7v2

ORU = (
    "\r".join(
        [
            "MSH|^~\\&|LIS|县人民医院|HIS|县医共体平台|20240315103000||ORU^R01^ORU_R01|MSG0001|P|2.5"
            "|||||CHN|UNICODE UTF-8",
            "PID|1||P001^^^HIS^MR~330781198001011234^^^&2.16.156.10011.1.2&ISO^NI||张三^^^^^^L||"
            "19800101|M",
            "PV1|1|O|内科门诊",
            "OBR|1|O1|F1|CBC^血常规^LOCAL",
            "OBX|1|NM|718-7^血红蛋白^LN||135|g/L|130-175|N|||F",
            "OBX|2|NM|789-8^红细胞计数^LN||4.52|10*12/L|4.3-5.8|N|||F",
            "OBX|3|ST|8251-1^备注^LN||第一行\\.br\\第二行 5\\S\\6|||||F|||||",
            "NTE|1||血常规备注",
        ]
    )
    + "\r"
)


@pytest.fixture(scope="module")
def oru() -> Message:
    return parse_hl7v2(ORU.encode("utf-8"))


def test_message_helpers(oru: Message) -> None:
    assert oru.message_type() == "ORU^R01"
    assert oru.control_id() == "MSG0001"
    assert oru.version() == "2.5"
    assert oru.charset == "utf-8"
    assert oru.declared_charset == "UNICODE UTF-8"
    assert [s.name for s in oru.segments] == [
        "MSH",
        "PID",
        "PV1",
        "OBR",
        "OBX",
        "OBX",
        "OBX",
        "NTE",
    ]
    assert oru.issues == []
    assert len(oru) == 8 and list(oru) == oru.segments


def test_segments_named_and_occurrences(oru: Message) -> None:
    obx = oru.segments_named("OBX")
    assert [s.occurrence for s in obx] == [1, 2, 3]
    assert [s.index for s in obx] == [4, 5, 6]
    assert [s.get(1) for s in obx] == ["1", "2", "3"]
    assert oru.segments_named("ZZZ") == []
    # the returned list is a copy: callers may not corrupt the index
    obx.clear()
    assert len(oru.segments_named("OBX")) == 3
    assert oru.first("PID") is oru.segments[1]
    assert oru.first("ZZZ") is None
    assert oru.msh is oru.segments[0]


def test_msh_numbering(oru: Message) -> None:
    msh = oru.msh
    assert msh.get(1) == "|"
    assert msh.get(2) == "^~\\&"  # the encoding characters are never unescaped or split
    assert msh.raw(2) == "^~\\&"
    assert msh.repetitions(2) == 1
    assert msh.get(3) == "LIS"
    assert msh.get(4) == "县人民医院"
    assert msh.get(9) == "ORU"
    assert msh.get(9, 1, 3) == "ORU_R01"
    assert msh.get(12) == "2.5"
    assert msh.get(18) == "UNICODE UTF-8"
    assert msh.field_count() == 18


def test_fields_components_repetitions_subcomponents(oru: Message) -> None:
    pid = oru.segments_named("PID")[0]
    assert pid.get(3) == "P001"
    assert pid.get(3, 1, 4) == "HIS"
    assert pid.get(3, 1, 5) == "MR"
    assert pid.get(3, 2) == "330781198001011234"
    assert pid.get(3, 2, 4) == ""  # first subcomponent of 3[2].4 is empty
    assert pid.get(3, 2, 4, 2) == "2.16.156.10011.1.2"
    assert pid.get(3, 2, 4, 3) == "ISO"
    assert pid.get(3, 3) == ""
    assert pid.repetitions(3) == 2
    assert pid.repetitions(5) == 1
    assert pid.repetitions(4) == 0
    assert pid.repetitions(99) == 0
    assert pid.get(5) == "张三"
    assert pid.get(5, 1, 7) == "L"
    assert pid.get(7) == "19800101"
    assert pid.components(3, 2) == ["330781198001011234", "", "", "", "NI"]
    assert pid.components(3, 3) == []
    assert pid.subcomponents(3, 2, 4) == ["", "2.16.156.10011.1.2", "ISO"]
    assert pid.subcomponents(3, 5, 1) == []


def test_components_in_a_segment_without_repetitions(oru: Message) -> None:
    obx = oru.segments_named("OBX")[0]
    assert obx.get(3) == "718-7"
    assert obx.get(3, 1, 2) == "血红蛋白"
    assert obx.get(3, 1, 3) == "LN"
    assert obx.get(3, 1, 4) == ""
    assert obx.get(3, 2) == ""
    assert obx.get(3, 1, 1, 2) == ""
    assert obx.get(5) == "135"
    assert obx.get(5, 1, 2) == ""
    assert obx.components(3) == ["718-7", "血红蛋白", "LN"]
    assert obx.components(3, 2) == []
    assert obx.subcomponents(3, 1, 2) == ["血红蛋白"]
    assert obx.repetitions(3) == 1


@pytest.mark.parametrize(
    ("field", "rep", "comp", "sub"),
    [
        (0, 1, 1, 1),
        (-1, 1, 1, 1),
        (-3, 1, 1, 1),
        (99, 1, 1, 1),
        (3, 0, 1, 1),
        (3, 1, 0, 1),
        (3, 1, 1, 0),
        (3, -1, 1, 1),
        (3, 1, -1, 1),
    ],
)
def test_out_of_range_positions_read_as_empty(
    oru: Message, field: int, rep: int, comp: int, sub: int
) -> None:
    for seg in (oru.segments_named("PID")[0], oru.segments_named("OBX")[0], oru.msh):
        assert seg.get(field, rep, comp, sub) == ""
    assert oru.msh.raw(0) == "" and oru.msh.raw(-1) == ""


def test_escapes_are_resolved_on_read_only(oru: Message) -> None:
    obx3 = oru.segments_named("OBX")[2]
    assert obx3.raw(5) == "第一行\\.br\\第二行 5\\S\\6"
    assert obx3.get(5) == "第一行\n第二行 5^6"
    assert obx3.components(5) == ["第一行\n第二行 5^6"]


def test_field_count_keeps_trailing_empty_fields(oru: Message) -> None:
    obx3 = oru.segments_named("OBX")[2]
    assert obx3.field_count() == 15
    assert obx3.get(15) == ""
    assert oru.segments_named("PV1")[0].field_count() == 3


def test_populated_fields_and_positions(oru: Message) -> None:
    obx = oru.segments_named("OBX")[0]
    assert obx.populated_fields() == [1, 2, 3, 5, 6, 7, 8, 11]
    pid = oru.segments_named("PID")[0]
    positions = list(pid.populated())
    assert (3, 1, 4, 1) in positions
    assert (3, 2, 4, 2) in positions and (3, 2, 4, 3) in positions
    assert (3, 2, 4, 1) not in positions  # empty leaf
    assert all(pid.get(*p) for p in positions)
    assert positions == sorted(positions)
    msh_fields = oru.msh.populated_fields()
    assert msh_fields[:4] == [1, 2, 3, 4] and 18 in msh_fields


def test_locations(oru: Message) -> None:
    obx3 = oru.segments_named("OBX")[2]
    assert obx3.location() == "OBX[3]"
    assert obx3.location(5) == "OBX[3]-5"
    assert obx3.location(5, 1) == "OBX[3]-5[1]"
    assert obx3.location(5, 1, 2) == "OBX[3]-5[1].2"
    assert obx3.location(5, 2, 1, 3) == "OBX[3]-5[2].1.3"
    assert obx3.location(5, comp=2) == "OBX[3]-5.2"
    assert obx3.location(5, sub=2) == "OBX[3]-5.1.2"
    assert oru.msh.location(18) == "MSH[1]-18"


def test_text_is_normalised_to_cr(oru: Message) -> None:
    assert oru.text == ORU.rstrip("\r")
    crlf = parse_hl7v2(ORU.replace("\r", "\r\n").encode("utf-8"))
    assert crlf.text == oru.text


def test_message_type_without_trigger_event() -> None:
    msg = parse_hl7v2(b"MSH|^~\\&|A|B|C|D|20240101||ACK|C1|P|2.5\rMSA|AA|X1")
    assert msg.message_type() == "ACK"
    assert msg.segments_named("MSA")[0].get(2) == "X1"


def test_other_separators() -> None:
    # field '#', component '$', repetition '*', escape '@', subcomponent '%'
    raw = (
        "MSH#$*@%#HIS#H1#LIS#L1#20240101##ORU$R01#C42#P#2.5\r"
        "PID#1##P1$$$HIS%1.2.3*P2$$$X##王五$$$$$$L\r"
        "OBX#1#ST#A$B#1#x@F@y@S@z@R@w@T@v@E@u |^~\\&"
    ).encode()
    msg = parse_hl7v2(raw)
    assert msg.message_type() == "ORU^R01"  # always written with '^'
    assert msg.control_id() == "C42"
    msh = msg.msh
    assert msh.get(1) == "#" and msh.get(2) == "$*@%"
    pid = msg.segments_named("PID")[0]
    assert pid.repetitions(3) == 2
    assert pid.get(3, 1, 4) == "HIS"
    assert pid.get(3, 1, 4, 2) == "1.2.3"
    assert pid.get(3, 2) == "P2"
    assert pid.get(5) == "王五"
    assert pid.get(5, 1, 7) == "L"
    obx = msg.segments_named("OBX")[0]
    # the message's own characters are escaped; the usual ones are plain data here
    assert obx.get(5) == "x#y$z*w%v@u |^~\\&"
    assert obx.get(3, 1, 2) == "B"


def test_truncation_character_of_v27_is_data() -> None:
    raw = (
        "MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|C1|P|2.7\rPID|1||ID#1^^^HIS||李#四||||||门牌\\P\\号"
    ).encode()
    msg = parse_hl7v2(raw)
    assert msg.msh.get(2) == "^~\\&#"
    assert msg.delimiters.truncation == "#"
    pid = msg.segments_named("PID")[0]
    assert pid.get(3) == "ID#1"
    assert pid.get(3, 1, 4) == "HIS"
    assert pid.get(5) == "李#四"
    assert pid.get(11) == "门牌#号"


def test_same_answers_with_and_without_the_flat_fast_path() -> None:
    # the second message has a repetition in PID-2, so PID is read through the split tree
    base = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5\rPID|1|{}|a^b^^c|d||e^f\r"
    flat = parse_hl7v2(base.format("x").encode()).segments[1]
    deep = parse_hl7v2(base.format("x~y").encode()).segments[1]
    positions = [
        (f, r, c, s)
        for f in range(0, 8)
        for r in range(0, 3)
        for c in range(0, 5)
        for s in range(0, 3)
    ]
    for pos in positions:
        if pos[0] == 2:
            continue
        assert flat.get(*pos) == deep.get(*pos), pos
    for f in (3, 4, 6):
        assert flat.components(f) == deep.components(f)
        assert flat.repetitions(f) == deep.repetitions(f)
    assert [p for p in flat.populated() if p[0] != 2] == [p for p in deep.populated() if p[0] != 2]
