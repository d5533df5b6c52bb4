"""adapter/hl7v2/split.py: one message per MSH, on bytes, never inside a character."""

from __future__ import annotations

import pytest

from adapter.hl7v2.split import looks_like_hl7v2, split_messages

HEAD = "MSH|^~\\&|LIS|检验科|||20261203||ORU^R01|{n}|P|2.5.1|||||CHN|GB18030\r"
BODY = "PID|1||P{n}||𠮷祥^张\rOBR|1|||CBC^血常规\rOBX|1|ST|X^结果||阴性\r"


def _message(n: int, codec: str) -> bytes:
    return (HEAD.format(n=n) + BODY.format(n=n)).encode(codec)


@pytest.mark.parametrize("codec", ["gb18030", "utf-8"])
@pytest.mark.parametrize("between", [b"", b"\n", b"\r\n", b"\r\n\r\n", b"\n\n\n"])
def test_messages_one_after_the_other_split_at_each_msh(codec: str, between: bytes) -> None:
    messages = [_message(n, codec) for n in (1, 2, 3)]
    data = between.join(messages)
    parts = split_messages(data)
    assert [p.raw for p in parts] == [m.rstrip(b"\r") for m in messages]
    assert [(p.number, p.total) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    for part in parts:  # each slice decodes on its own: no character was cut
        assert part.raw.decode(codec).startswith("MSH|")
        assert data[part.start : part.start + len(part.raw)] == part.raw


def test_msh_inside_a_segment_is_not_a_new_message() -> None:
    text = _message(1, "utf-8") + b"NTE|1||see MSH|^~\\&| in the text\r"
    assert [p.raw for p in split_messages(text)] == [text]


def test_a_file_that_is_not_hl7v2_is_never_split() -> None:
    two = _message(1, "utf-8") + _message(2, "utf-8")
    for data in (b"report_no,name\n" + two, b'{"MSH": 1}\n' + two, b"<x/>\n" + two):
        assert [p.raw for p in split_messages(data)] == [data]
    assert not looks_like_hl7v2(two, "text/csv")
    assert looks_like_hl7v2(b"\xef\xbb\xbf\r\n" + two)  # a BOM and blank lines first
    with_bom = split_messages(b"\xef\xbb\xbf" + two)
    assert [p.raw[:4] for p in with_bom] == [b"MSH|", b"MSH|"]  # the BOM is no message's


def test_a_batch_of_two_batches_drops_every_wrapper() -> None:
    one, two, three = (_message(n, "gb18030").rstrip(b"\r") for n in (1, 2, 3))
    data = (
        b"FHS|^~\\&\rBHS|^~\\&\r" + one + b"\r" + two + b"\rBTS|2\r"
        b"BHS|^~\\&\r" + three + b"\rBTS|1\rFTS|2\r"
    )
    assert [p.raw for p in split_messages(data)] == [one, two, three]


def test_mllp_frames_saved_one_after_the_other_split_too() -> None:
    one, two = (_message(n, "gb18030") for n in (1, 2))
    data = b"\x0b" + one + b"\x1c\r\x0b" + two + b"\x1c\r"
    assert [p.raw for p in split_messages(data)] == [one.rstrip(b"\r"), two.rstrip(b"\r")]
