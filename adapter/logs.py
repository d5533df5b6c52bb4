"""Logging set-up: one line per record, optionally JSON, with personal data redacted.

The rule for everyone writing log calls
---------------------------------------
Log **ids and locations, never values**: the message id, ``Patient/<id>``, the source
system, ``PID-5`` or ``OBX[3]-5`` - not what stands there. Names in particular cannot be
recognised by a pattern (张伟 is just two characters), so code must never put a person's
name into a log call, an exception message or an ``extra=`` field.

As a safety net, every record is passed through :func:`redact`, which removes what *can*
be recognised:

* Chinese resident ID numbers: 18 characters (17 digits and a digit or ``X``) and the old
  15-digit form, when they stand alone (not part of a longer run of digits) and carry a
  plausible birth date;
  full-width digits (１１０１０５…, typed with a Chinese input method) count, and every
  full-width digit of a redacted line is written as its ASCII digit;
* mainland mobile numbers (``1[3-9]`` + 9 digits, optionally ``+86``/``0086`` and ``-`` or
  space groups) and landline numbers (``0`` + 2-3 digit area code, optional ``-``, 7-8 digits);
* the fields of HL7 v2 segments that describe a person (``PID``, ``PD1``, ``NK1``, ``MRG``,
  ``GT1``, ``IN1``, ``IN2``): everything after ``PID|`` up to the end of the segment;
* names where their place gives them away: FHIR ``"family"`` / ``"given"`` values of a
  logged dict and ``姓名: ...`` / ``name=...`` labels;
* the values databases quote in their error texts: PostgreSQL's ``DETAIL:`` and
  ``CONTEXT:`` lines (``Failing row contains (...)``, ``Key (value)=(欧阳) already
  exists``), MariaDB's ``Duplicate entry '...'`` and ``Incorrect string value: '...'``, and
  the quoted input of ``invalid input syntax for type ...: "..."``. (Statement parameters
  never reach a log: engines are made with ``hide_parameters=True``.)
* credentials: ``Authorization`` / ``Proxy-Authorization`` header values, ``Bearer`` and
  ``Basic`` credentials, ``access_token`` / ``refresh_token`` / ``client_secret`` /
  ``password`` values in JSON or form text (see :mod:`adapter.credentials`).

Ordinary numbers are left alone: lab values (``6.1``), HL7 timestamps
(``20261125134000``), counts and durations.

:func:`configure_logging` installs the redaction twice: as a log-record factory, so that
every record made anywhere in the process is clean before any handler (pytest's capture,
uvicorn's handlers) sees it, and as a filter on its own handler, for records built by other
means (``logging.makeLogRecord``). :func:`redact` is idempotent, so doing both is harmless.
Uvicorn must be started with ``log_config=None`` so that it logs through the root handler.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adapter.credentials import redact_credentials

__all__ = ["RedactingFilter", "configure_logging", "redact", "redact_numbers", "redact_record"]

ID_MASK = "[REDACTED-ID]"
PHONE_MASK = "[REDACTED-PHONE]"
NAME_MASK = "[REDACTED-NAME]"
SEGMENT_MASK = "[REDACTED]"

# Segments whose fields are all about a person (patient, next of kin, guarantor, insured).
_PERSON_SEGMENTS = "PID|PD1|NK1|MRG|GT1|IN1|IN2"
# From the field separator to the segment end: a CR or LF, or their escaped forms ``\r``
# / ``\n`` as they appear when bytes or strings are logged with ``%r``.
_SEGMENT_RE = re.compile(
    rf"(?:(?<=\\[rn])|(?<![A-Za-z0-9]))({_PERSON_SEGMENTS})\|(?:(?!\\r|\\n)[^\r\n])*"
)

_DATE_MMDD = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
# A number stands alone when no digit touches it and it is not part of a decimal number:
# 65536.16395085712 holds "16395085712", which must not be read as a mobile number.
_START = r"(?<!\d)(?<!\d\.)"
_END = r"(?!\d)(?!\.\d)"
# 18 characters: 6-digit area, YYYYMMDD, 3-digit sequence, check digit or X.
_ID18_RE = re.compile(rf"{_START}[1-9]\d{{5}}(?:18|19|20)\d\d{_DATE_MMDD}\d{{3}}[\dXxＸｘ]{_END}")
# full-width digits (typed with a Chinese input method) are written as ASCII digits before
# the number patterns run: those patterns spell their first digits in ASCII
_FULL_WIDTH_DIGITS = str.maketrans({0xFF10 + i: str(i) for i in range(10)})
# 15 digits (issued before 1999): 6-digit area, YYMMDD, 3-digit sequence.
_ID15_RE = re.compile(rf"{_START}[1-9]\d{{5}}\d\d{_DATE_MMDD}\d{{3}}{_END}")
_MOBILE_RE = re.compile(rf"{_START}(?:(?:\+|00)86[- ]?)?1[3-9]\d[- ]?\d{{4}}[- ]?\d{{4}}{_END}")
# Also not after a bare "." so that long fractions (0.0123456789) survive.
_LANDLINE_RE = re.compile(rf"{_START}(?<!\.)(?:\(0\d{{2,3}}\)|0\d{{2,3}})[- ]?\d{{7,8}}{_END}")
# "family": "张", 'given': ['三'] - values of FHIR HumanName parts in a logged dict or JSON.
_HUMAN_NAME_RE = re.compile(
    r"""(["'](?:family|given|prefix|suffix)["']\s*:\s*)(\[[^\]]*\]|"[^"]*"|'[^']*')"""
)
# 姓名：张三 / 患者姓名=张三 / patient_name=Zhang - a labelled name up to the next separator.
# A bare "name=" is left alone: destinations, mappings and code systems have names too.
_NAME_LABEL_RE = re.compile(
    r"((?:姓名|(?<![A-Za-z])(?:patient|person)[_ ]?name)\s*[:：=]\s*)"
    r"(?![\"'\[{])[^\s,;，；|^&\"')}\]]+",
    re.IGNORECASE,
)
# What databases quote from the row or the input in their error texts.
DB_VALUES_MASK = "[REDACTED-DB-VALUES]"
_DB_DETAIL_RE = re.compile(r"((?:DETAIL|CONTEXT):\s*)[^\r\n]*")
# PostgreSQL names the COPY input line it failed on, with that line's values
_DB_COPY_RE = re.compile(r"(COPY [\w.\"]+, line \d+(?:, column [\w\"]+)?:\s*)[^\r\n]*")
_DB_QUOTED_RE = re.compile(
    r"((?:Duplicate entry|Incorrect \w+ value:?|invalid input syntax for(?: type)? [\w ]+:)"
    r"\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)
_QUICK_CHECK_RE = re.compile(
    r"\d|PID|PD1|NK1|MRG|GT1|IN1|IN2|family|given|prefix|suffix|姓名|name|DETAIL|CONTEXT"
    r"|Duplicate|Incorrect|invalid input|COPY|auth|bearer|basic|token|secret|password",
    re.IGNORECASE,
)


# What each step of the chain needs to find anything at all (a necessary condition: a text
# without it is left unchanged by that step, so skipping the step gives the same text).
# A log line of ids and counts (a message id, a source, "12 resources") passes the quick
# check by its digits and then skips most of the chain (decision 0107).
_CREDENTIAL_GATE_RE = re.compile(
    r"authorization|cookie|x-api-key|token|client_secret|passw|api_?key|Bearer|Basic",
    re.IGNORECASE,
)
_QUOTED_GATE_RE = re.compile(r"Duplicate entry|Incorrect|invalid input syntax for")
_HUMAN_NAME_GATE_RE = re.compile(r"family|given|prefix|suffix")
_NAME_LABEL_GATE_RE = re.compile(r"姓名|name", re.IGNORECASE)
# every ID and phone pattern holds 7 digits in a row, or (a mobile written 138 1234 5678)
# 4 digits, a space or hyphen, 4 digits; full-width digits are written as ASCII first
_NUMBER_GATE_RE = re.compile(r"\d{7}|\d{4}[- ]\d{4}")


def redact(text: str) -> str:
    """Return ``text`` with national IDs, phone numbers, person segments and names masked."""
    if not text or not _QUICK_CHECK_RE.search(text):
        return text
    if _CREDENTIAL_GATE_RE.search(text):
        text = redact_credentials(text)
    if "DETAIL" in text or "CONTEXT" in text:
        text = _DB_DETAIL_RE.sub(lambda m: f"{m.group(1)}{DB_VALUES_MASK}", text)
    if _QUOTED_GATE_RE.search(text):
        text = _DB_QUOTED_RE.sub(lambda m: f"{m.group(1)}{DB_VALUES_MASK}", text)
    if "COPY" in text:
        text = _DB_COPY_RE.sub(lambda m: f"{m.group(1)}{DB_VALUES_MASK}", text)
    if "|" in text:
        text = _SEGMENT_RE.sub(lambda m: f"{m.group(1)}|{SEGMENT_MASK}", text)
    if _HUMAN_NAME_GATE_RE.search(text):
        text = _HUMAN_NAME_RE.sub(lambda m: f'{m.group(1)}"{NAME_MASK}"', text)
    if _NAME_LABEL_GATE_RE.search(text):
        text = _NAME_LABEL_RE.sub(lambda m: f"{m.group(1)}{NAME_MASK}", text)
    text = text.translate(_FULL_WIDTH_DIGITS)
    if _NUMBER_GATE_RE.search(text):
        text = _ID18_RE.sub(ID_MASK, text)
        text = _ID15_RE.sub(ID_MASK, text)
        text = _MOBILE_RE.sub(PHONE_MASK, text)
        text = _LANDLINE_RE.sub(PHONE_MASK, text)
    return text


def redact_numbers(text: str) -> str:
    """Only national IDs and phone numbers masked (the console's views of message content,
    which mask names by field themselves)."""
    text = text.translate(_FULL_WIDTH_DIGITS)
    text = _ID18_RE.sub(ID_MASK, text)
    text = _ID15_RE.sub(ID_MASK, text)
    text = _MOBILE_RE.sub(PHONE_MASK, text)
    return _LANDLINE_RE.sub(PHONE_MASK, text)


_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


# The redacted text redact_record left in ``record.msg`` (the very object): a second pass
# (the handler's filter after the record factory's) redacts only what came after (extras).
_REDACTED = "_adapter_redacted_msg"


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace the record's message and args by their redacted merge; mask exception text.

    After this ``record.msg`` is the final, redacted text and ``record.args`` is empty, so
    no formatter or handler can reach the original arguments. String ``extra=`` fields are
    redacted too, but only by the handler filter: ``Logger.makeRecord`` adds them after the
    record factory has run. A record this function already redacted, whose message and
    exception text nothing has replaced since, keeps them (``redact`` is idempotent: the
    same text again would come out unchanged).
    """
    done = record.__dict__.get(_REDACTED)
    if done is None or done[0] is not record.msg or record.args:
        try:
            message = record.getMessage()
        except Exception:  # bad format arguments must not break the caller's code path
            message = f"{record.msg!s} (args: {record.args!r})"
        record.msg = redact(message)
        record.args = ()
        done = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text and (done is None or done[1] is not record.exc_text):
        record.exc_text = redact(record.exc_text)
    if record.stack_info and (done is None or done[2] is not record.stack_info):
        record.stack_info = redact(record.stack_info)
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and key != _REDACTED and isinstance(value, str):
            record.__dict__[key] = redact(value)
    record.__dict__[_REDACTED] = (record.msg, record.exc_text, record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record passing through (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _TextFormatter(logging.Formatter):
    """``2026-11-25T13:40:00.123Z INFO adapter.pipeline: message``, one line per record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return _one_line(super().format(record))


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ``extra=`` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        # ensure_ascii=False keeps Chinese readable; json escapes CR/LF, so one line.
        return jsonlib.dumps(out, ensure_ascii=False, default=str)


def _utc_iso(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


_base_factory: Callable[..., logging.LogRecord] | None = None


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _base_factory is not None
    return redact_record(_base_factory(*args, **kwargs))


def install_record_redaction() -> None:
    """Make every log record in the process redacted at creation (idempotent)."""
    global _base_factory
    current = logging.getLogRecordFactory()
    if current is _redacting_factory:
        return
    _base_factory = current
    logging.setLogRecordFactory(_redacting_factory)


# Loggers that install handlers of their own; they are made to log through the root instead.
_THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_OURS = "_adapter_handler"


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Send all logging to stderr, one line per record (JSON if ``json``), redacted.

    ``level`` is a standard level name (case-insensitive); an unknown one is a
    ``ConfigError``. Calling it again replaces the handler it installed before.
    """
    name = level.strip().upper()
    numeric = logging.getLevelNamesMapping().get(name)
    if numeric is None:
        # Imported here: errors is a leaf module, but logs must stay importable on its own.
        from adapter.errors import ConfigError

        raise ConfigError(f"unknown log level {level!r}", key="ADAPTER_LOG_LEVEL")

    install_record_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json else _TextFormatter())
    handler.addFilter(RedactingFilter())

    root = logging.getLogger()
    # Replace only a handler of ours: handlers others put on the root (pytest's capture)
    # stay, and calling this twice does not print every line twice.
    for old in list(root.handlers):
        if getattr(old, _OURS, False):
            root.removeHandler(old)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    for logger_name in _THIRD_PARTY_LOGGERS:
        third = logging.getLogger(logger_name)
        third.handlers.clear()
        third.propagate = True
    # one INFO line per outgoing request (with resource ids) is noise at INFO level
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
