"""FHIR date, dateTime and instant values as half-open UTC ranges ``[start, end)``.

A FHIR date is as precise as it is written: ``2026`` covers the whole year, ``2026-05-03``
the whole day, ``2026-05-03T10:00:00+08:00`` one second. Searching compares such ranges
(FHIR R4 §3.1.1.5.6 / search "date"), so both the index and the search values are turned
into ranges here. Values without a zone (dates, and sloppy date-times) are read in the
given zone; the index and the searches must use the same one (``DEFAULT_ZONE`` unless the
caller passes ``Settings.default_timezone`` to both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

# Open ends of periods and out-of-range values. Fixed-width years keep the SQLite
# string comparison right.
MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2})"
    r"(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?"
    r")?)?)?$"
)


class DateFormatError(ValueError):
    """The text is not a FHIR date, dateTime or instant."""


def parse_range(text: str, zone: tzinfo = DEFAULT_ZONE) -> tuple[datetime, datetime]:
    """The half-open UTC range ``[start, end)`` that a FHIR date/dateTime/instant covers."""
    match = _DATE_RE.match(text.strip())
    if not match:
        raise DateFormatError(f"not a FHIR date or dateTime: {text!r}")
    g = match.groupdict()
    tz = _zone_of(g["tz"], zone)
    try:
        year = int(g["year"])
        if g["month"] is None:
            start = _local(year, 1, 1, tz=tz)
            return start, _next(lambda: _local(year + 1, 1, 1, tz=tz))
        month = int(g["month"])
        if g["day"] is None:
            start = _local(year, month, 1, tz=tz)
            nxt = (year + 1, 1) if month == 12 else (year, month + 1)
            return start, _next(lambda: _local(*nxt, 1, tz=tz))
        day = int(g["day"])
        if g["hour"] is None:
            start = _local(year, month, day, tz=tz)
            return start, _add(start, timedelta(days=1))
        hour, minute = int(g["hour"]), int(g["minute"])
        if g["second"] is None:
            start = _local(year, month, day, hour, minute, tz=tz)
            return start, _add(start, timedelta(minutes=1))
        second = int(g["second"])
        fraction = g["fraction"] or ""
        digits = min(len(fraction), 6)  # Python keeps microseconds
        micro = int(fraction[:digits].ljust(6, "0")) if digits else 0
        start = _local(year, month, day, hour, minute, second, micro, tz=tz)
        step = timedelta(microseconds=10 ** (6 - digits)) if digits else timedelta(seconds=1)
        return start, _add(start, step)
    except ValueError as exc:  # month 13, day 31 of a 30-day month, hour 25 ...
        raise DateFormatError(f"not a valid date: {text!r} ({exc})") from None


def period_range(period: dict, zone: tzinfo = DEFAULT_ZONE) -> tuple[datetime, datetime]:
    """A FHIR Period as a range; a missing start or end is open."""
    start = parse_range(period["start"], zone)[0] if period.get("start") else MIN_INSTANT
    end = parse_range(period["end"], zone)[1] if period.get("end") else MAX_INSTANT
    return start, end


def format_instant(moment: datetime) -> str:
    """FHIR instant in UTC with milliseconds: ``2026-11-25T13:40:00.123+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def truncate_to_millis(moment: datetime) -> datetime:
    """UTC and whole milliseconds, so a stored time equals its FHIR instant text."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _zone_of(text: str | None, default: tzinfo) -> tzinfo:
    if not text:
        return default
    if text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise DateFormatError(f"not a valid time zone offset: {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _local(*parts: int, tz: tzinfo) -> datetime:
    try:
        return datetime(*parts, tzinfo=tz).astimezone(UTC)
    except OverflowError:
        return MIN_INSTANT if parts[0] < 5000 else MAX_INSTANT


def _next(make: Callable[[], datetime]) -> datetime:
    try:
        return make()
    except ValueError:  # year 10000
        return MAX_INSTANT


def _add(start: datetime, step: timedelta) -> datetime:
    try:
        return min(start + step, MAX_INSTANT)
    except OverflowError:
        return MAX_INSTANT
