"""What every place a night is read from provides (files, FHIR, database): the items of a
window in a stable order after a checkpoint, the source's own list or count of a day, and
fetching chosen keys again (replaying gaps)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from adapter.errors import AdapterError


class SourceDown(AdapterError):
    """The place cannot be read now (folder missing, server or database not answering)."""

    issue_code = "transient"


@dataclass(slots=True)
class Item:
    """One document of a night. ``position`` orders the items of a window (the checkpoint
    is the position of the last one stored); ``raw`` is None for a deletion the source
    reports without a document."""

    key: str
    day: str
    raw: bytes | None
    position: list[Any]
    op: str = "new"  # new | corrected | deleted, as the source says


@dataclass(slots=True)
class Claim:
    """What the source says it produced on a day: its keys, its count, or neither."""

    how: str  # "manifest", "folder listing", "list query", "_summary=count" ...
    keys: set[str] | None = None
    count: int | None = None
    deleted: set[str] = field(default_factory=set)


class Fetcher(Protocol):
    def check(self) -> None:
        """Raise :class:`SourceDown` with the reason when the place cannot be read."""
        ...

    def window(self, day: date, watermark: str | None, overlap: timedelta) -> dict[str, Any]:
        """The part of the source this run reads, fixed at its start (JSON)."""
        ...

    def items(self, window: dict[str, Any], after: list[Any] | None) -> Iterator[Item]: ...

    def total(self, window: dict[str, Any]) -> int | None: ...

    def claim(self, day: date) -> Claim: ...

    def fetch_keys(self, day: date, keys: set[str]) -> Iterator[Item]: ...

    def close(self) -> None: ...


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start, start + timedelta(days=1)
