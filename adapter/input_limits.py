"""Bounds on the shape of one input, so that no single message costs unbounded time or memory.

The byte limit (``ADAPTER_MAX_MESSAGE_BYTES``) bounds the size; these bound what a small
input can still multiply into: a million one-character HL7 v2 segments, a field of a
hundred thousand repetitions, JSON nested thousands deep. An input over a limit is
quarantined with the place where the limit was crossed (``segment 10001``, ``OBX[3]-5``,
``$.a.b.c``) and the issue code ``too-costly``; it is never half-read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapter.errors import ParseError

if TYPE_CHECKING:
    from adapter.settings import Settings

TOO_COSTLY = "too-costly"  # FHIR IssueType: stopped to protect the server's resources


@dataclass(frozen=True, slots=True)
class InputLimits:
    segments: int = 10_000  # HL7 v2 segments in one message
    fields: int = 1_000  # fields in one HL7 v2 segment
    repetitions: int = 1_000  # repetitions of one HL7 v2 field
    components: int = 100  # components of one repetition, subcomponents of one component
    nesting_depth: int = 100  # JSON objects and arrays inside each other

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        return cls(
            segments=settings.max_segments,
            fields=settings.max_fields,
            repetitions=settings.max_repetitions,
            components=settings.max_components,
            nesting_depth=settings.max_nesting_depth,
        )


DEFAULT_LIMITS = InputLimits()


def over_limit(what: str, limit: int, setting: str, location: str) -> ParseError:
    """The error for an input over one of the limits: where, which limit, which setting."""
    return ParseError(
        f"{what}: the limit is {limit} (ADAPTER_{setting.upper()}); the input is kept unread. "
        "Split it, or raise the limit if such inputs are expected",
        location=location,
        code=TOO_COSTLY,
    )
