"""``message_event`` builds its ``AuditEvent`` by its slots (decision 0148): the same event
as the dataclass's constructor gives, field by field, equal and as frozen."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from adapter.audit.events import AuditEvent, _made, message_event


def _given(chance: random.Random) -> dict[str, object]:
    def maybe(text: str) -> str | None:
        return None if chance.random() < 0.3 else f"{text}-{chance.randrange(100)}"

    return {
        "message_id": f"m-{chance.randrange(10**6)}",
        "source_system": chance.choice(["std-hl7v2", "lis", "his"]),
        "at": datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=chance.randrange(10**6)),
        "facility": maybe("f"),
        "channel": maybe("c"),
        "address": maybe("a"),
        "entities": tuple(f"Observation/{n}/_history/1" for n in range(chance.randrange(4))),
        "patients": tuple(f"Patient/{n}" for n in range(chance.randrange(3))),
    }


def test_message_event_is_the_constructor_s_event() -> None:
    chance = random.Random(148)
    for _ in range(500):
        given = _given(chance)
        detail = {"resources": chance.randrange(20), "mapping": chance.choice([None, "m@1"])}
        action, outcome = chance.choice(["message.stored", "message.received"]), "success"
        made = message_event(action, outcome, **given, **detail)  # type: ignore[arg-type]
        expected = AuditEvent(
            action=action,
            outcome=outcome,
            actor=f"source:{given['source_system']}",
            subject=f"InboundMessage/{given['message_id']}",
            correlation_id=None,
            at=given["at"],  # type: ignore[arg-type]
            detail=detail,
            facility=given["facility"],  # type: ignore[arg-type]
            channel=given["channel"],  # type: ignore[arg-type]
            address=given["address"],  # type: ignore[arg-type]
            message_id=given["message_id"],  # type: ignore[arg-type]
            entities=given["entities"],  # type: ignore[arg-type]
            patients=given["patients"],  # type: ignore[arg-type]
        )
        for f in dataclasses.fields(AuditEvent):
            assert getattr(made, f.name) == getattr(expected, f.name), f.name
        assert made == expected
        assert repr(made) == repr(expected)


def test_made_sets_every_field_and_stays_frozen() -> None:
    names = [f.name for f in dataclasses.fields(AuditEvent)]
    made = _made(*names)
    assert [getattr(made, n) for n in names] == names
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.action = "message.stored"  # type: ignore[misc]
    with pytest.raises(ValueError):
        _made(*names[:-1])  # every field, or none made
