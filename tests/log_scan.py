"""A pytest plugin: no log line of the suite may carry a national ID or a mobile number.

Loaded by ``tests/conftest.py`` (``-p tests.log_scan`` loads it elsewhere). At session start
one handler goes on the root logger and the root level is lowered to INFO (the level the
adapter runs at), so every record of every test - and of collection and session fixtures -
passes through it. Each record is copied and rendered the way the running adapter writes it
(the redaction of :mod:`adapter.logs`, then its JSON line, which holds ``extra=`` fields and
the traceback); the copy never changes what the test itself sees. The line is then scanned
for

* a valid 18-character resident ID (checksum and birth date as ``parse_national_id`` reads
  them, full-width digits included), and
* a mainland mobile number ``1[3-9]`` + 9 digits,

standing alone (not inside a longer number or a decimal fraction, as the redaction rule).
A test whose records hold one fails in its teardown; records outside any test fail the
session fixture's teardown. Each pytest-xdist worker scans its own records, and a failure
there is a test error, so the run fails. The report names the logger, level and test and
shows the value masked - never the value itself.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapter.identity.national_id import mask_national_id, parse_national_id
from adapter.logs import _JsonFormatter, redact_record

# as adapter.logs: no digit, and no "digit." (a decimal fraction), on either side
_START = r"(?<!\d)(?<!\d\.)"
_END = r"(?!\d)(?!\.\d)"
_ID18 = re.compile(rf"{_START}\d{{17}}[\dX]{_END}")
_MOBILE = re.compile(rf"{_START}1[3-9]\d{{9}}{_END}")
_SCAN_LEVEL = logging.INFO


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "national ID" or "mobile number"
    masked: str
    logger: str
    level: str
    where: str  # the test's node id, or "outside any test"

    def __str__(self) -> str:
        where = f"{self.level} line of {self.logger}"
        return f"{self.where}: unmasked {self.kind} {self.masked} in a {where}"


def find_unmasked(line: str) -> list[tuple[str, str]]:
    """(kind, masked value) for each valid national ID and mobile number in ``line``."""
    text = line.translate(_FULL_WIDTH_DIGITS)
    found: list[tuple[str, str]] = []
    for match in _ID18.finditer(text):
        if parse_national_id(match.group()).is_valid:
            found.append(("national ID", mask_national_id(match.group())))
    for match in _MOBILE.finditer(text):
        number = match.group()
        found.append(("mobile number", number[:3] + "****" + number[-4:]))
    return found


# as normalise_national_id, but for a whole line: full-width digits and X are folded, an
# ASCII "x" is not (ordinary words hold it); a lower-case check x is not a valid ID there
_FULL_WIDTH_DIGITS = str.maketrans({0xFF10 + i: str(i) for i in range(10)} | {0xFF38: "X"})


class ScanningHandler(logging.Handler):
    """Renders each record as the adapter's log line and keeps what it finds unmasked."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self._formatter = _JsonFormatter()
        self._findings: list[Finding] = []
        self._guard = threading.Lock()
        self.where = "outside any test"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            copy = logging.makeLogRecord(dict(record.__dict__))
            line = self._formatter.format(redact_record(copy))
        except Exception:  # a record the adapter could not print is not a leak to scan
            return
        if not any(ch.isdigit() for ch in line):
            return
        hits = find_unmasked(line)
        if hits:
            with self._guard:
                self._findings.extend(
                    Finding(kind, masked, record.name, record.levelname, self.where)
                    for kind, masked in hits
                )

    def take(self) -> list[Finding]:
        with self._guard:
            findings, self._findings = self._findings, []
        return findings

    def keep(self, findings: list[Finding]) -> None:
        with self._guard:
            self._findings[:0] = findings


def _failure(findings: list[Finding]) -> str:
    shown = "\n".join(f"  {f}" for f in findings[:20])
    more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
    return (
        "personal data reached a log line unmasked (see tests/log_scan.py; "
        f"log ids and locations, never values):\n{shown}{more}"
    )


_HANDLER = ScanningHandler()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    if root.getEffectiveLevel() > _SCAN_LEVEL:
        root.setLevel(_SCAN_LEVEL)
    # as configure_logging: the running adapter keeps these at WARNING
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_HANDLER)


@pytest.fixture(scope="session", autouse=True)
def _log_scan_session() -> Iterator[None]:
    """Fails the session (of this worker) for records made outside any test."""
    yield
    findings = _HANDLER.take()
    if findings:
        pytest.fail(_failure(findings), pytrace=False)


@pytest.fixture(autouse=True)
def _log_scan(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test whose records (its setup, call or teardown) hold an unmasked value."""
    earlier = _HANDLER.take()  # made between tests: reported by the session fixture
    _HANDLER.where = request.node.nodeid
    yield
    findings = _HANDLER.take()
    _HANDLER.where = "outside any test"
    _HANDLER.keep(earlier)
    if findings:
        pytest.fail(_failure(findings), pytrace=False)
