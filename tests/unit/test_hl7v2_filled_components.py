"""adapter.hl7v2 Segment.filled_components (the unread report's question for every field a
rule read): the same answer as the component tree, with or without splitting."""

from __future__ import annotations

from adapter.hl7v2 import parse_hl7v2

MESSAGE = "\r".join(
    [
        "MSH|^~\\&|LIS|检验科|||20261203||ORU^R01|1|P|2.5.1",
        "PID|1||P1^^^HIS^MR~Q2^^^EMPI||张^三^^^^^L|^^|19700505|F||^x^|a&b^^c&",
        "OBR|1|O1^LIS|F1|CBC^血常规^L|||||||||||\\T\\^^x|^^^",
        "OBX|1|ST|X^结果||阴性^||||||F",
        "NTE|1||~second^^&|&&",
    ]
)


def _by_tree(segment, field: int, rep: int) -> list[int]:
    count = len(segment.components(field, rep))
    return [c for c in range(1, count + 1) if any(segment.subcomponents(field, rep, c))]


def test_filled_components_agree_with_the_component_tree() -> None:
    message = parse_hl7v2(MESSAGE.encode())
    checked = 0
    for segment in message.segments:
        for field in range(0, segment.field_count() + 2):
            for rep in range(0, 4):
                assert segment.filled_components(field, rep) == _by_tree(segment, field, rep), (
                    segment.name,
                    field,
                    rep,
                )
                checked += 1
    assert checked > 100


def test_filled_components_of_plain_and_split_values() -> None:
    pid, obr, nte = (parse_hl7v2(MESSAGE.encode()).segments[i] for i in (1, 2, 4))
    assert pid.filled_components(5) == [1, 2, 7]  # 张^三^^^^^L
    assert pid.filled_components(6) == []  # only separators
    assert pid.filled_components(3, 2) == [1, 4]  # the second repetition
    assert pid.filled_components(11) == [1, 3]  # a&b^^c& (subcomponents)
    assert obr.filled_components(15) == [1, 3]  # an escape in the first component
    assert nte.filled_components(3, 1) == []  # an empty first repetition
    assert nte.filled_components(3, 2) == [1]  # second^^&
    assert nte.filled_components(4) == []  # &&
