"""Dates and times: HL7 DTM and the ISO forms some vendors write, to FHIR date, dateTime
and instant; a time without zone is in the consortium's time zone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import TEXT_DECIDES, location, text

_DTM = re.compile(
    r"^(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,4}))?)?)?)?)?)?(?P<z>[+-]\d{4}|Z)?$"
)
# ISO forms written by some vendors: "2026-11-20 08:30:00", "2026-11-20T08:30:00.123-05:00"
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?)?\s*(?P<z>[+-]\d{2}:?\d{2}|Z)?$"
)


def _parse_dtm(
    ev: FunctionContext, value: Any, *, lenient: bool = False
) -> tuple[dict[str, str | None], str] | None:
    """Parse an HL7 DTM (or ISO) value. A value that cannot be read is an error, or with
    ``lenient`` a warning (the caller then leaves the element out)."""
    report = ev.warning if lenient else ev.error
    raw = text(value).strip()
    if not raw:
        return None
    match = (_ISO if re.match(r"^\d{4}-\d{2}", raw) else _DTM).match(raw)
    if not match:
        report(
            f"{raw!r} is not an HL7 date/time (YYYYMMDDHHMMSS[+ZZZZ])"
            + (": left out" if lenient else ""),
            location(value),
            code="value",
        )
        return None
    parts = match.groupdict()
    zone = parts["z"]
    if zone and zone != "Z":
        zone = parts["z"] = zone.replace(":", "")
        if int(zone[1:3]) > 14 or int(zone[3:]) > 59:
            report(
                f"{raw!r} has an impossible time zone offset" + (": left out" if lenient else ""),
                location(value),
                code="value",
            )
            return None
    try:
        datetime(
            int(parts["y"]),
            int(parts["mo"] or 1),
            int(parts["d"] or 1),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
        )
        if parts["h"] and int(parts["h"]) > 23:
            raise ValueError
    except ValueError:
        report(
            f"{raw!r} is not a real date/time" + (": left out" if lenient else ""),
            location(value),
            code="value",
        )
        return None
    return parts, raw


def _zone(ev: FunctionContext, parts: dict[str, str | None], naive: datetime) -> str:
    zone = parts["z"]
    if zone == "Z":
        return "Z"
    if zone:
        return f"{zone[:3]}:{zone[3:]}"
    offset = ev.timezone.utcoffset(naive) or timedelta(0)
    total = int(offset.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    return f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


@transform("dtm_to_datetime")
def dtm_to_datetime(ev: FunctionContext, value: Any) -> str | None:
    """HL7 DTM to FHIR dateTime; a time without zone is in the consortium's zone."""
    return _to_datetime(ev, value, lenient=False)


@transform("dtm_to_datetime_or_omit")
def dtm_to_datetime_or_omit(ev: FunctionContext, value: Any) -> str | None:
    """Like dtm_to_datetime for a non-essential time: a value that cannot be read is a
    warning at its location and gives nothing (the element is left out)."""
    return _to_datetime(ev, value, lenient=True)


# a message writes its few times in many places (each result's effective time, the report's
# issued time, the specimen's collection): each text converted once per time zone. Only a
# text that converts is kept: one that does not is reported (error or warning, at its
# location) every time, as before. Bounded: emptied when full.
_DATETIMES: dict[tuple[str, Any], str] = {}
_DATETIMES_MAX = 4096


# per type of context, what reads its ``timezone``: a property's function, called at once
# (reading the property is a call from C into an interpreter loop of its own; 0149)
_TIMEZONE_READERS: dict[type, Any] = {}
_TIMEZONE_ATTRIBUTE = attrgetter("timezone")


def _timezone(ev: FunctionContext) -> Any:
    """``ev.timezone``."""
    reader = _TIMEZONE_READERS.get(type(ev))
    if reader is None:
        found = getattr(type(ev), "timezone", None)
        reader = found.fget if isinstance(found, property) else _TIMEZONE_ATTRIBUTE
        if len(_TIMEZONE_READERS) < 64:
            _TIMEZONE_READERS[type(ev)] = reader
    return reader(ev)


def _to_datetime(ev: FunctionContext, value: Any, *, lenient: bool) -> str | None:
    key = (
        (
            value
            if type(value) is str
            else value.text
            if type(value) in TEXT_DECIDES
            else text(value)
        ).strip(),
        _timezone(ev),
    )
    done = _DATETIMES.get(key)
    if done is not None:
        return done
    result = _convert_datetime(ev, value, lenient=lenient)
    if result is not None:
        if len(_DATETIMES) >= _DATETIMES_MAX:
            _DATETIMES.clear()
        _DATETIMES[key] = result
    return result


def _convert_datetime(ev: FunctionContext, value: Any, *, lenient: bool) -> str | None:
    parsed = _parse_dtm(ev, value, lenient=lenient)
    if parsed is None:
        return None
    p, _ = parsed
    if not p["mo"]:
        return p["y"]
    if not p["d"]:
        return f"{p['y']}-{p['mo']}"
    date = f"{p['y']}-{p['mo']}-{p['d']}"
    if not p["h"]:
        return date
    naive = datetime(
        int(p["y"]),
        int(p["mo"]),
        int(p["d"]),
        int(p["h"]),  # type: ignore[arg-type]
        int(p["mi"] or 0),
        int(p["s"] or 0),
    )
    fraction = f".{p['f']}" if p["f"] else ""
    clock = f"{p['h']}:{p['mi'] or '00'}:{p['s'] or '00'}{fraction}"
    return f"{date}T{clock}{_zone(ev, p, naive)}"


@transform("dtm_to_date")
def dtm_to_date(ev: FunctionContext, value: Any) -> str | None:
    parsed = _parse_dtm(ev, value)
    if parsed is None:
        return None
    p, _ = parsed
    kept = []  # a loop, not a generator (each step resumed from C; decision 0149)
    for x in (p["y"], p["mo"], p["d"]):
        if x:
            kept.append(x)
    return "-".join(kept)


@transform("dtm_to_instant")
def dtm_to_instant(ev: FunctionContext, value: Any) -> str | None:
    """An instant (issued, a Bundle timestamp) is a record-keeping time, never what a message
    is about: a value that cannot be read, or has only a date, is a warning at its location
    and is left out; the rest of the resource is kept (issue 15)."""
    return _to_instant(ev, value, lenient=True)


def _to_instant(ev: FunctionContext, value: Any, *, lenient: bool) -> str | None:
    result = _to_datetime(ev, value, lenient=lenient)
    if result is None:
        return None
    if "T" not in result:
        ev.warning(
            f"{text(value).strip()!r} has no time of day; an instant needs one",
            location(value),
            code="value",
        )
        return None
    return result
