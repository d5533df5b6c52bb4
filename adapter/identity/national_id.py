"""Chinese resident identity numbers (居民身份证号码, GB 11643-1999).

18 characters: 6-digit region code, 8-digit birth date (YYYYMMDD), 3-digit sequence (odd
for men, even for women), 1 check character (ISO 7064 MOD 11-2, ``X`` for 10).
The first-generation 15-digit form has a 2-digit year (19YY) and no check character.

``parse_national_id`` never raises; what is wrong is listed in ``problems`` without
repeating the number, so the list can go into issues and logs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date
from operator import mul
from typing import Any, Literal

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"  # indexed by the weighted sum mod 11
_DIGITS17 = re.compile(r"[0-9]{17}")
_FORM18 = re.compile(r"[0-9]{17}[0-9X]")
_FORM15 = re.compile(r"[0-9]{15}")
# full-width digits and X, as typed with a Chinese input method
_FULL_WIDTH = str.maketrans(
    {**{0xFF10 + i: str(i) for i in range(10)}, 0xFF38: "X", 0xFF58: "X", ord("x"): "X"}
)

Sex = Literal["male", "female"]


def national_id_check_char(first17: str) -> str:
    """The check character for the first 17 digits (ISO 7064 MOD 11-2)."""
    if not _DIGITS17.fullmatch(first17):
        raise ValueError("expected exactly 17 ASCII digits")
    return _check_char(first17)


def _check_char(first17: str) -> str:
    """``national_id_check_char`` of 17 ASCII digits already checked (``map`` in C: a
    generator of 17 products cost about 10 µs)."""
    return _CHECK_CHARS[sum(map(mul, map(int, first17), _WEIGHTS)) % 11]


@dataclass(frozen=True, slots=True)
class NationalId:
    value: str  # normalised: stripped, upper-case X, full-width digits made ASCII
    length: int
    valid_checksum: bool | None  # None for 15 digits and when it cannot be computed
    # the 18-character form computed from a 15-digit number; None otherwise (an
    # 18-character value already is that form)
    eighteen: str | None
    birth_date: date | None
    sex: Sex | None
    problems: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.problems


def normalise_national_id(value: str) -> str:
    return value.strip().translate(_FULL_WIDTH)


def parse_national_id(value: str, *, today: date | None = None) -> NationalId:
    """Read a 15- or 18-character identity number; never raises for a str.

    A message's patient has its number read several times (the translation's checks, the
    patient index's features and warnings): each value's reading is kept for the day it
    was made on (a birth date "in the future" depends on the day), a bounded number of
    them (decision 0125). The result is immutable but for ``problems``, which no caller
    changes."""
    day = today or _today()
    if value.__class__ is str:
        found = _READ.get((value, day))
        if found is None:
            found = _parse(value, day)
            if len(_READ) >= _READ_MAX:
                _READ.clear()
            _READ[(value, day)] = found
        return found
    return _parse(value, day)


# (value as given, the day) -> its reading; emptied when full (a batch's patients, a few
# hundred numbers: the same patient's number is met again within a message)
_READ: dict[tuple[str, date], NationalId] = {}
_READ_MAX = 1024
_DAY: list[Any] = [0.0, None]  # until when (time.time()) the day below is asked again, the day


def _today() -> date:
    """``date.today()``, asked at most once a second (it reads the local zone: a system
    call each time, most of a cached reading's cost in bulk work)."""
    now = time.time()
    if now >= _DAY[0]:
        _DAY[1] = date.today()
        _DAY[0] = now + 1.0
    return _DAY[1]  # type: ignore[no-any-return]


def _parse(value: str, today: date) -> NationalId:
    v = normalise_national_id(value) if isinstance(value, str) else ""
    problems: list[str] = []
    n = len(v)
    checksum: bool | None = None
    eighteen: str | None = None
    birth: date | None = None
    sex: Sex | None = None

    if n == 18:
        if _FORM18.fullmatch(v):
            expected = _check_char(v[:17])
            checksum = v[17] == expected
            if not checksum:
                problems.append(f"bad checksum: check character is {v[17]}, expected {expected}")
            birth = _birth_date(v[6:14], problems, today)
            sex = _sex(v[16])
        else:
            problems.append("non-digit characters: expected 17 digits and a digit or X")
    elif n == 15:
        if _FORM15.fullmatch(v):
            first17 = v[:6] + "19" + v[6:]
            eighteen = first17 + _check_char(first17)
            birth = _birth_date("19" + v[6:12], problems, today)
            sex = _sex(v[14])
        else:
            problems.append("non-digit characters: expected 15 digits")
    else:
        problems.append(f"wrong length: {n} characters, expected 18 (or 15)")
    return NationalId(v, n, checksum, eighteen, birth, sex, problems)


def _birth_date(yyyymmdd: str, problems: list[str], today: date) -> date | None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        problems.append("bad birth date: the date digits are not a calendar date")
        return None
    if born > today:
        problems.append("bad birth date: the date is in the future")
        return None
    return born


def _sex(sequence_digit: str) -> Sex:
    return "male" if int(sequence_digit) % 2 else "female"


def mask_national_id(value: str) -> str:
    """For listings: first 6 and last 4 characters kept, e.g. ``110105********002X``.

    Values of 10 characters or fewer are masked completely.
    """
    v = normalise_national_id(value) if isinstance(value, str) else ""
    if len(v) <= 10:
        return "*" * len(v)
    return v[:6] + "*" * (len(v) - 10) + v[-4:]
