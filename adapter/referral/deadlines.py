"""The referral loop's deadlines (时限, docs/referral-loop.md): which steps a ledger row
still owes, by when and by whom. Pure: a row in, the deadlines out; the scheduler
(adapter/referral/scheduler.py) puts the breached ones on the worklist.

    accept     requested / received, not answered    created + 30 min (急诊 / 绿色通道) or 24 h
    expire     requested, nobody touched it          created + 3 days: cancelled, 已过期
    arrive     accepted, the patient not arrived     accepted + 3 days
    feedback   arrived, no diagnosis / summary back  arrived + 7 days
    follow-up  up-referral discharged, the sender    discharged + 5 days
               has not followed the patient up
    follow-up-N  down-referral, the primary facility created + 2 / 7 / 30 days
               has recorded fewer than N follow-ups

A deadline is owed only while its step is not done; a closed referral (rejected,
cancelled, failed, entered in error) owes nothing; a completed up-referral still owes the
sender's follow-up, a completed down-referral its remaining follow-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from adapter.consortium import Deadlines

SENDER, RECEIVER = "sender", "receiver"
ENDED = frozenset({"rejected", "cancelled", "failed", "entered-in-error"})
OPEN_UNANSWERED = frozenset({"draft", "requested", "received"})
ARRIVED = frozenset({"arrived", "admitted", "discharged", "followed-up"})
KINDS = {
    "accept": "接收/同意",
    "expire": "过期",
    "arrive": "到诊",
    "feedback": "反馈(回转)",
    "follow-up": "随访",
}


class Row(Protocol):
    """The ledger columns the deadlines read (adapter.store.models.ReferralLedger)."""

    direction: str
    emergency: bool
    green_channel: bool
    status: str
    business_status: str | None
    created_at: datetime
    received_at: datetime | None
    accepted_at: datetime | None
    arrived_at: datetime | None
    discharged_at: datetime | None
    feedback_at: datetime | None
    followed_up_at: datetime | None
    follow_ups: int


@dataclass(frozen=True, slots=True)
class Due:
    kind: str  # accept, expire, arrive, feedback, follow-up, follow-up-2 ...
    at: datetime
    party: str  # who must act: sender or receiver


def label(kind: str) -> str:
    """The deadline's Chinese name: 接收/同意, 第2次随访 ..."""
    if kind.startswith("follow-up-"):
        return f"第{kind.rsplit('-', 1)[1]}次随访"
    return KINDS.get(kind, kind)


def owed(row: Row, rules: Deadlines) -> list[Due]:
    """The deadlines ``row`` still owes, earliest first."""
    if row.status in ENDED:
        return []
    found: list[Due] = []
    if row.status in OPEN_UNANSWERED:
        urgent = row.emergency or row.green_channel
        window = (
            timedelta(minutes=rules.accept_emergency_minutes)
            if urgent
            else timedelta(hours=rules.accept_routine_hours)
        )
        found.append(Due("accept", row.created_at + window, RECEIVER))
        if row.status in ("draft", "requested") and row.received_at is None:
            expire = row.created_at + timedelta(days=rules.expire_untouched_days)
            found.append(Due("expire", expire, RECEIVER))
    if row.status == "accepted" and row.arrived_at is None and row.accepted_at is not None:
        found.append(Due("arrive", row.accepted_at + timedelta(days=rules.arrive_days), RECEIVER))
    # a down-referral's feedback is its follow-ups
    waiting = row.feedback_at is None and row.discharged_at is None and row.direction != "down"
    if row.arrived_at is not None and waiting:
        found.append(
            Due("feedback", row.arrived_at + timedelta(days=rules.feedback_days), RECEIVER)
        )
    if row.direction != "down" and row.discharged_at is not None and row.followed_up_at is None:
        found.append(
            Due("follow-up", row.discharged_at + timedelta(days=rules.follow_up_days), SENDER)
        )
    if row.direction == "down" and row.status not in OPEN_UNANSWERED:
        for number, days in enumerate(rules.down_follow_up_days, start=1):
            if row.follow_ups < number:
                kind = "follow-up" if number == 1 else f"follow-up-{number}"
                found.append(Due(kind, row.created_at + timedelta(days=days), RECEIVER))
    return sorted(found, key=lambda d: (d.at, d.kind))
