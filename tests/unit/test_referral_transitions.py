"""Conformance of the referral state machine (adapter/referral/machine.py against the table
adapter/data/referral-states.yaml): one row per case, who asks what of a Task in which
state, and what comes out (the new status and businessStatus, or the rule that refuses)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.errors import ConfigError
from adapter.referral.machine import (
    Change,
    Outcome,
    Refusal,
    business_of,
    business_status,
    request_status,
    transition,
)
from adapter.referral.rules import REASON_SYSTEM, parse_table, table

S, R, A, X = "sender", "receiver", "adapter", None  # X: a facility that is neither
EVIDENCE = ("Encounter/e1", "Composition/c1")
NOTE = ("Encounter/e1", "DocumentReference/consult-1")


def _task(status: str | None, business: str | None = None, outputs: tuple[str, ...] = ()):
    if status is None:
        return None
    task: dict[str, Any] = {"resourceType": "Task", "id": "t1", "status": status}
    if business:
        task["businessStatus"] = business_status(business)
    if outputs:
        task["output"] = [{"valueReference": {"reference": r}} for r in outputs]
    return task


# (id, status, business, outputs, change, party, expected): expected is (status, business)
# of the new content, "same" for no new content, or the refusing rule's name
CASES: list[tuple[str, str | None, str | None, tuple[str, ...], Change, str | None, Any]] = [
    # the sender makes and sends the referral
    ("create-requested", None, None, (), Change("requested"), S, ("requested", "requested")),
    ("create-draft", None, None, (), Change("draft"), S, ("draft", "requested")),
    (
        "draft-to-requested",
        "draft",
        "requested",
        (),
        Change("requested"),
        S,
        ("requested", "requested"),
    ),
    ("receiver-cannot-create", None, None, (), Change("requested"), R, "requested-by-sender"),
    ("create-without-status", None, None, (), Change(), S, "status-required"),
    ("create-accepted", None, None, (), Change("accepted"), R, "accepted-from"),
    # the receiver answers
    ("received", "requested", "requested", (), Change("received"), R, ("received", "received")),
    (
        "accepted-from-requested",
        "requested",
        "requested",
        (),
        Change("accepted"),
        R,
        ("accepted", "accepted"),
    ),
    (
        "accepted-from-received",
        "received",
        "received",
        (),
        Change("accepted"),
        R,
        ("accepted", "accepted"),
    ),
    ("booked", "accepted", "accepted", (), Change("accepted", "booked"), R, ("accepted", "booked")),
    (
        "rejected-with-reason",
        "received",
        "received",
        (),
        Change("rejected", reason="bed-full"),
        R,
        ("rejected", "rejected"),
    ),
    (
        "rejected-without-reason",
        "received",
        "received",
        (),
        Change("rejected"),
        R,
        "reason-required",
    ),
    (
        "rejected-unknown-reason",
        "received",
        "received",
        (),
        Change("rejected", reason="tired"),
        R,
        "unknown-reason",
    ),
    (
        "rejected-after-accept",
        "accepted",
        "accepted",
        (),
        Change("rejected", reason="out-of-scope"),
        R,
        ("rejected", "rejected"),
    ),
    (
        "referred-onward",
        "received",
        "received",
        (),
        Change("rejected", "referred-onward", reason="out-of-scope"),
        R,
        ("rejected", "referred-onward"),
    ),
    (
        "sender-cannot-accept",
        "requested",
        "requested",
        (),
        Change("accepted"),
        S,
        "accepted-by-receiver",
    ),
    (
        "sender-cannot-receive",
        "requested",
        "requested",
        (),
        Change("received"),
        S,
        "received-by-receiver",
    ),
    (
        "receiver-cannot-request",
        "received",
        "received",
        (),
        Change("requested"),
        R,
        "requested-by-sender",
    ),
    ("received-after-accepted", "accepted", "accepted", (), Change("received"), R, "received-from"),
    ("outsider-refused", "requested", "requested", (), Change("received"), X, "party-not-involved"),
    (
        "outsider-no-op-refused",
        "requested",
        "requested",
        (),
        Change("requested"),
        X,
        "party-not-involved",
    ),
    ("unknown-status", "requested", "requested", (), Change("ready"), R, "unknown-status"),
    # the patient comes
    (
        "arrived",
        "accepted",
        "booked",
        (),
        Change("in-progress", "arrived"),
        R,
        ("in-progress", "arrived"),
    ),
    (
        "arrived-by-default",
        "accepted",
        "accepted",
        (),
        Change("in-progress"),
        R,
        ("in-progress", "arrived"),
    ),
    (
        "emergency-arrival-before-accept",
        "received",
        "received",
        (),
        Change("in-progress", "arrived"),
        R,
        ("in-progress", "arrived"),
    ),
    (
        "arrival-from-requested",
        "requested",
        "requested",
        (),
        Change("in-progress"),
        R,
        "in-progress-from",
    ),
    (
        "admitted",
        "in-progress",
        "arrived",
        (),
        Change("in-progress", "admitted"),
        R,
        ("in-progress", "admitted"),
    ),
    (
        "admitted-keeps-status",
        "in-progress",
        "arrived",
        (),
        Change(business="admitted"),
        R,
        ("in-progress", "admitted"),
    ),
    (
        "discharged",
        "in-progress",
        "admitted",
        ("Encounter/e1",),
        Change(business="discharged"),
        R,
        ("in-progress", "discharged"),
    ),
    (
        "arrived-after-admitted",
        "in-progress",
        "admitted",
        (),
        Change(business="arrived"),
        R,
        "business-status-backwards",
    ),
    (
        "admitted-again-is-same",
        "in-progress",
        "admitted",
        (),
        Change(business="admitted"),
        R,
        "same",
    ),
    (
        "business-of-other-status",
        "accepted",
        "accepted",
        (),
        Change(business="admitted"),
        R,
        "business-status-of-status",
    ),
    (
        "unknown-business",
        "accepted",
        "accepted",
        (),
        Change(business="lost"),
        R,
        "unknown-business-status",
    ),
    (
        "sender-cannot-admit",
        "in-progress",
        "arrived",
        (),
        Change(business="admitted"),
        S,
        "in-progress-by-receiver",
    ),
    ("on-hold", "in-progress", "admitted", (), Change("on-hold"), R, ("on-hold", "admitted")),
    ("resumed", "on-hold", "admitted", (), Change("in-progress"), R, ("in-progress", "admitted")),
    ("failed", "in-progress", "admitted", (), Change("failed"), R, ("failed", "admitted")),
    (
        "output-by-sender",
        "in-progress",
        "admitted",
        (),
        Change(output=("Encounter/e1",)),
        S,
        "output-by-receiver",
    ),
    (
        "output-added",
        "in-progress",
        "admitted",
        (),
        Change(output=("Encounter/e1",)),
        R,
        ("in-progress", "admitted"),
    ),
    # closing the loop
    (
        "completed-with-evidence",
        "in-progress",
        "discharged",
        EVIDENCE,
        Change("completed"),
        R,
        ("completed", "closed"),
    ),
    (
        "completed-with-consult-note",
        "in-progress",
        "arrived",
        NOTE,
        Change("completed"),
        R,
        ("completed", "closed"),
    ),
    (
        "completed-evidence-in-change",
        "in-progress",
        "admitted",
        (),
        Change("completed", output=EVIDENCE),
        R,
        ("completed", "closed"),
    ),
    (
        "completed-without-evidence",
        "in-progress",
        "discharged",
        ("Encounter/e1",),
        Change("completed"),
        R,
        ("completed", "closed-without-feedback"),
    ),
    (
        "closed-asked-without-evidence",
        "in-progress",
        "discharged",
        (),
        Change("completed", "closed"),
        R,
        ("completed", "closed-without-feedback"),
    ),
    (
        "completed-keeps-discharged",
        "in-progress",
        "discharged",
        EVIDENCE,
        Change("completed", "discharged"),
        R,
        ("completed", "discharged"),
    ),
    (
        "completed-from-requested",
        "requested",
        "requested",
        EVIDENCE,
        Change("completed"),
        R,
        "completed-from",
    ),
    (
        "sender-cannot-complete",
        "in-progress",
        "discharged",
        EVIDENCE,
        Change("completed"),
        S,
        "completed-by-receiver",
    ),
    (
        "nothing-after-completed",
        "completed",
        "closed",
        EVIDENCE,
        Change("cancelled"),
        S,
        "final-completed",
    ),
    (
        "no-error-after-completed",
        "completed",
        "closed",
        EVIDENCE,
        Change("entered-in-error"),
        S,
        "final-completed",
    ),
    ("completed-again-is-same", "completed", "closed", EVIDENCE, Change("completed"), R, "same"),
    (
        "no-output-after-completed",
        "completed",
        "closed",
        EVIDENCE,
        Change(output=("Composition/c2",)),
        R,
        "final-completed",
    ),
    # withdrawing
    (
        "sender-cancels",
        "requested",
        "requested",
        (),
        Change("cancelled"),
        S,
        ("cancelled", "cancelled"),
    ),
    (
        "receiver-cancels",
        "accepted",
        "accepted",
        (),
        Change("cancelled"),
        R,
        ("cancelled", "cancelled"),
    ),
    (
        "cancel-in-progress",
        "in-progress",
        "arrived",
        (),
        Change("cancelled"),
        S,
        ("cancelled", "cancelled"),
    ),
    ("cancel-again-is-same", "cancelled", "cancelled", (), Change("cancelled"), S, "same"),
    ("cancel-after-rejected", "rejected", "rejected", (), Change("cancelled"), S, "cancelled-from"),
    (
        "expired-by-adapter",
        "requested",
        "requested",
        (),
        Change("cancelled", "expired"),
        A,
        ("cancelled", "expired"),
    ),
    (
        "expired-not-by-sender",
        "requested",
        "requested",
        (),
        Change("cancelled", "expired"),
        S,
        "business-expired-by-adapter",
    ),
    (
        "entered-in-error",
        "requested",
        "requested",
        (),
        Change("entered-in-error"),
        S,
        ("entered-in-error", "cancelled"),
    ),
    (
        "error-after-rejection",
        "rejected",
        "rejected",
        (),
        Change("entered-in-error"),
        S,
        ("entered-in-error", "cancelled"),
    ),
    (
        "receiver-cannot-error",
        "accepted",
        "accepted",
        (),
        Change("entered-in-error"),
        R,
        "entered-in-error-by-sender",
    ),
    (
        "nothing-after-error",
        "entered-in-error",
        "cancelled",
        (),
        Change("requested"),
        S,
        "final-entered-in-error",
    ),
    (
        "accept-after-cancelled",
        "cancelled",
        "cancelled",
        (),
        Change("accepted"),
        R,
        "accepted-from",
    ),
    ("request-again-is-same", "requested", "requested", (), Change("requested"), S, "same"),
    (
        "receiver-requested-on-requested",
        "requested",
        "requested",
        (),
        Change("requested"),
        R,
        "requested-by-sender",
    ),
    (
        "sender-accepted-on-accepted",
        "accepted",
        "accepted",
        (),
        Change("accepted"),
        S,
        "accepted-by-receiver",
    ),
    ("accepted-again-is-same", "accepted", "accepted", (), Change("accepted"), R, "same"),
]


@pytest.mark.parametrize(
    ("status", "business", "outputs", "change", "party", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_transition(
    status: str | None,
    business: str | None,
    outputs: tuple[str, ...],
    change: Change,
    party: str | None,
    expected: Any,
) -> None:
    task = _task(status, business, outputs)
    result = transition(task, change, party)
    if isinstance(expected, tuple):
        assert isinstance(result, Outcome), result
        assert result.changed
        assert (result.task["status"], business_of(result.task)) == expected
        assert task is None or task["status"] == status  # the input is not changed
    elif expected == "same":
        assert isinstance(result, Outcome), result
        assert not result.changed and result.task is task
    else:
        assert isinstance(result, Refusal), result
        assert result.rule == expected
        assert result.message


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_status_rule_is_exercised() -> None:
    """Each Task.status of the table is reached by some case, and each is refused by some."""
    reached = {c[6][0] for c in CASES if isinstance(c[6], tuple)}
    assert set(table().status) <= reached


def test_rejection_carries_the_coded_reason_and_time() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    result = transition(
        _task("received", "received"),
        Change("rejected", reason="bed-full", reason_text="心内科床位已满", at=at),
        R,
    )
    assert isinstance(result, Outcome)
    reason = result.task["statusReason"]
    assert reason["coding"][0] == {
        "system": REASON_SYSTEM,
        "code": "bed-full",
        "display": "床位已满",
    }
    assert reason["text"] == "心内科床位已满"
    assert result.task["businessStatus"]["text"] == "已拒绝"
    assert result.task["lastModified"] == at.isoformat()


def test_closed_without_feedback_is_said() -> None:
    result = transition(_task("in-progress", "discharged"), Change("completed"), R)
    assert isinstance(result, Outcome)
    assert business_of(result.task) == "closed-without-feedback"
    assert "closed without feedback" in result.notes[0]


def test_output_is_added_once() -> None:
    task = _task("in-progress", "admitted", ("Encounter/e1",))
    result = transition(task, Change(output=("Encounter/e1", "Composition/c1")), R)
    assert isinstance(result, Outcome)
    refs = [o["valueReference"]["reference"] for o in result.task["output"]]
    assert refs == ["Encounter/e1", "Composition/c1"]


@pytest.mark.parametrize(
    ("request_now", "tasks", "expected"),
    [
        ("active", ["rejected", "requested"], None),  # another receiver may still take it
        ("active", ["rejected", "accepted"], None),
        ("active", ["rejected", "rejected"], "revoked"),
        ("active", ["rejected", "completed"], "completed"),
        ("active", ["cancelled"], "revoked"),
        ("active", ["entered-in-error"], "entered-in-error"),
        ("revoked", ["completed"], None),  # the sender's decision stands
        ("active", [], None),
    ],
)
def test_request_status(request_now: str, tasks: list[str], expected: str | None) -> None:
    assert request_status(request_now, tasks) == expected


def test_a_wrong_table_names_file_and_line() -> None:
    text = (
        "version: 1\nstatus:\n  accepted: {by: receiver, from: [requested]}\n"
        "  done: {by: receiver, from: [accepted]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_table(text, "states.yaml")
    assert "states.yaml:4" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_table("version: 1\nstatus:\n  accepted: {by: nurse, from: [requested]}\n", "s.yaml")
    assert "s.yaml:3" in str(caught.value) and "nurse" in str(caught.value)


@pytest.mark.parametrize(
    ("business", "change", "direction", "expected"),
    [
        ("discharged", Change("completed"), "down", "down-referral-follow-up"),
        ("arrived", Change("completed"), "down", "down-referral-follow-up"),
        ("followed-up", Change("completed"), "down", "completed"),
        ("arrived", Change("completed", "followed-up"), "down", "completed"),
        ("discharged", Change("completed"), "up", "completed"),  # up: no follow-up needed
        ("discharged", Change("completed"), None, "completed"),
    ],
)
def test_a_down_referral_closes_after_the_first_follow_up(
    business: str, change: Change, direction: str | None, expected: str
) -> None:
    task = _task("in-progress", business, EVIDENCE)
    result = transition(task, change, R, direction=direction)
    if expected == "completed":
        assert isinstance(result, Outcome) and result.task["status"] == "completed", result
    else:
        assert isinstance(result, Refusal) and result.rule == expected
