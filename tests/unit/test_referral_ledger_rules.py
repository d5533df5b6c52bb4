"""The pure parts of the ledger and the deadlines (docs/ledger.md, docs/referral-loop.md):
which deadlines a row owes, the masked name, what a slip lacks, ICD-10 chapters, the
week ending Friday, quarters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapter.consortium import Deadlines
from adapter.referral.analysis import chapter, quarter
from adapter.referral.deadlines import label, owed
from adapter.referral.ledger import mask_name, missing_of
from adapter.referral.report import week_ending

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
RULES = Deadlines()
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Row:
    direction: str = "up"
    emergency: bool = False
    green_channel: bool = False
    status: str = "requested"
    business_status: str | None = "requested"
    created_at: datetime = T0
    received_at: datetime | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    discharged_at: datetime | None = None
    feedback_at: datetime | None = None
    followed_up_at: datetime | None = None
    follow_ups: int = 0


def kinds(row: Row) -> list[tuple[str, timedelta, str]]:
    return [(d.kind, d.at - T0, d.party) for d in owed(row, RULES)]


def test_routine_and_emergency_acceptance_and_expiry() -> None:
    assert kinds(Row()) == [
        ("accept", timedelta(hours=24), "receiver"),
        ("expire", timedelta(days=3), "receiver"),
    ]
    assert kinds(Row(emergency=True))[0] == ("accept", timedelta(minutes=30), "receiver")
    assert kinds(Row(green_channel=True))[0] == ("accept", timedelta(minutes=30), "receiver")
    received = Row(status="received", received_at=T0)
    assert kinds(received) == [("accept", timedelta(hours=24), "receiver")]  # touched: no expiry


def test_arrive_feedback_follow_up() -> None:
    accepted = Row(status="accepted", received_at=T0, accepted_at=T0 + timedelta(hours=1))
    assert kinds(accepted) == [("arrive", timedelta(days=3, hours=1), "receiver")]
    arrived = replace(accepted, status="in-progress", arrived_at=T0 + timedelta(days=1))
    assert kinds(arrived) == [("feedback", timedelta(days=8), "receiver")]
    discharged = replace(arrived, discharged_at=T0 + timedelta(days=4), status="completed")
    assert kinds(discharged) == [("follow-up", timedelta(days=9), "sender")]
    assert kinds(replace(discharged, followed_up_at=T0 + timedelta(days=5))) == []


def test_down_referral_follow_ups_and_ended_referrals() -> None:
    down = Row(direction="down", status="in-progress", received_at=T0, accepted_at=T0)
    assert [k for k, _, _ in kinds(down)] == ["follow-up", "follow-up-2", "follow-up-3"]
    assert [k for k, _, _ in kinds(replace(down, follow_ups=2))] == ["follow-up-3"]
    for status in ("rejected", "cancelled", "failed", "entered-in-error"):
        assert kinds(Row(status=status)) == []
    assert label("follow-up-2") == "第2次随访" and label("accept") == "接收/同意"


def test_masked_names() -> None:
    assert mask_name("张秀英") == "张*英"
    assert mask_name("王芳") == "王*"
    assert mask_name("欧阳娜娜") == "欧**娜"
    assert mask_name(None) is None


def test_missing_items_of_slips() -> None:
    up = {
        "reasonCode": [{"coding": [{"code": "I10.x00"}], "text": "高血压"}],
        "performer": [{"reference": "Organization/x"}],
        "requester": {"reference": "PractitionerRole/y"},
        "note": [{"text": "主要现病史：头晕"}, {"text": "治疗经过：服药"}],
    }
    assert missing_of(up, "up") == []
    assert missing_of({**up, "note": []}, "up") == ["病史", "治疗经过"]
    assert missing_of({}, "down") == [
        "诊断",
        "住院号",
        "主要检查结果",
        "治疗经过",
        "下一步治疗方案及康复建议",
    ]
    flagged = {**up, "extension": [{"url": "https://yigongti-fhir-adapter.github.io/fhir/"
               "StructureDefinition/incomplete-source", "valueString": "转诊医生"}]}  # fmt: skip
    assert missing_of(flagged, "up") == ["来源缺项: 转诊医生"]


def test_chapters_weeks_quarters() -> None:
    assert chapter("I25.103").startswith("IX")
    assert chapter("E11.900").startswith("IV")
    assert chapter("S72.0").startswith("XIX") and chapter("T98.1").startswith("XIX")
    assert chapter(None) == "未编码"
    start, end = week_ending(date(2026, 11, 27), SHANGHAI)
    assert (start.date(), end.date()) == (date(2026, 11, 21), date(2026, 11, 28))
    with pytest.raises(ValueError, match="not a Friday"):
        week_ending(date(2026, 11, 26), SHANGHAI)
    q4 = quarter(2026, 4, SHANGHAI)
    assert (q4[0].month, q4[1].year, q4[1].month) == (10, 2027, 1)
