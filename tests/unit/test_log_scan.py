"""The suite-wide log scan (tests/log_scan.py) finds what it must and nothing else."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.log_scan import ScanningHandler, find_unmasked

ROOT = Path(__file__).resolve().parents[2]
ID18_X = "11010519491231002X"  # valid checksum
ID18_BAD_CHECK = "110105194912310021"
MOBILE = "13812345678"


def test_finds_valid_ids_and_mobiles_masked() -> None:
    found = find_unmasked(f"patient {ID18_X} phone {MOBILE}")
    assert found == [("national ID", "110105********002X"), ("mobile number", "138****5678")]


def test_finds_full_width_digits() -> None:
    full_width = "".join(chr(0xFF10 + int(c)) if c.isdigit() else "Ｘ" for c in ID18_X)
    assert find_unmasked(f"身份证 {full_width}") == [("national ID", "110105********002X")]


@pytest.mark.parametrize(
    "line",
    [
        f"bad check {ID18_BAD_CHECK}",
        "masked 110105********002X and [REDACTED-ID] [REDACTED-PHONE]",
        "a timestamp 20261125134000 and a count 12345678901234567890",
        "a fraction 65536.13812345678 and a landline 0731-12345678",
        f"longer run 9{MOBILE}",
    ],
)
def test_leaves_other_numbers(line: str) -> None:
    assert find_unmasked(line) == []


def test_handler_sees_the_line_as_the_adapter_writes_it() -> None:
    """The redaction masks what it recognises; an ``extra=`` dict is printed as is."""
    handler = ScanningHandler()
    logger = logging.getLogger("tests.log_scan.private")
    logger.propagate = False  # the session's own scan must not see these
    logger.addHandler(handler)
    try:
        logger.warning("masked by the redaction: %s %s", ID18_X, MOBILE)
        assert handler.take() == []
        logger.warning("an extra dict", extra={"patient": {"phone": MOBILE}})
        (finding,) = handler.take()
        assert (finding.kind, finding.masked, finding.level) == (
            "mobile number",
            "138****5678",
            "WARNING",
        )
        assert MOBILE not in str(finding)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_leaking_test_fails_the_run(tmp_path: Path) -> None:
    """A real pytest run with the plugin: the leaking test errors, the clean one passes,
    the exit status is 1 and the report shows the value masked only. (pytest's own capture
    of the test's log calls shows them as made: that is the test's code, not the adapter's.)"""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_leak.py").write_text(
        "import logging\n"
        "def test_leaks():\n"
        f"    logging.getLogger('x').info('masked %s', {ID18_X!r})\n"
        f"    logging.getLogger('x').info('not masked', extra={{'p': [{ID18_X!r}]}})\n"
        "def test_clean():\n"
        f"    logging.getLogger('x').warning('masked %s, not a phone 6.13812345678', {MOBILE!r})\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "pytest", "-p", "tests.log_scan", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-q", "-rA", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # test_leaks passes its call and errors in its teardown
    assert "2 passed, 1 error" in out, out
    assert "ERROR at teardown of test_leaks" in out, out
    assert "unmasked national ID 110105********002X in a INFO line of x" in out, out
    reports = [line for line in out.splitlines() if "unmasked" in line]
    assert reports and not any(ID18_X in line for line in reports)
