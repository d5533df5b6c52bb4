"""Retention: records older than the retention go to signed, compressed NDJSON archives
that verify like the table; only archived and verified records are purged."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.archive import ArchiveError, archive, check_archives, purge
from adapter.audit.signing import new_key
from adapter.audit.verify import Report
from adapter.pipeline import Receipt
from tests.audit.audit_support import BAD, ORU, check, records
from tests.integration.connector_helpers import example_pipeline

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)


@pytest.fixture
def log(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    pipeline = example_pipeline(session_factory)
    old, now = Receipt("std-hl7v2", "cli", received_at=OLD), Receipt("std-hl7v2", "cli")
    pipeline.ingest(ORU.read_bytes(), old)  # records 1-3, 200 days old
    pipeline.ingest(BAD.read_bytes(), old)  # 4-6
    pipeline.ingest(ORU.read_bytes().replace(b"QSLIS", b"QSLIX", 1), now)  # 7-9, now
    return session_factory


def test_archive_verify_and_purge(log: sessionmaker[Session], tmp_path: Path) -> None:
    key = new_key(tmp_path / "key.pem")
    folder = tmp_path / "archives"
    with log() as session:
        made = archive(session, folder, key, older_than=NOW - timedelta(days=180), now=NOW)
    assert made is not None and (made.first, made.last) == (1, 6)
    assert made.data.name == "audit-000000000001-000000000006.ndjson.gz"

    report = Report()
    good = check_archives(folder, key.public_key(), report)
    assert report.ok and report.records == 6 and [a.last for a in good] == [6]

    with log.begin() as session:
        assert purge(session, good, retention_days=180, now=NOW) == 6
    assert [r["seq"] for r in records(log)] == [7, 8, 9]
    # the table goes on from the archive: verified with the archive as its start
    assert check(log, start=(good[-1].last, good[-1].last_hash)).ok
    assert not check(log, start=(good[-1].last, "0" * 64)).ok


def test_a_changed_archive_is_found_and_blocks_the_purge(
    log: sessionmaker[Session], tmp_path: Path
) -> None:
    key = new_key(tmp_path / "key.pem")
    folder = tmp_path / "archives"
    with log() as session:
        made = archive(session, folder, key, older_than=NOW - timedelta(days=180), now=NOW)
    assert made is not None
    lines = gzip.decompress(made.data.read_bytes()).splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"outcome":"success"', b'"outcome":"failure"', 1)
    made.data.write_bytes(gzip.compress(b"".join(lines)))
    report = Report()
    assert check_archives(folder, key.public_key(), report) == []
    assert [(f.kind, f.seq) for f in report.findings] == [("changed", 1)]
    with log.begin() as session, pytest.raises(ArchiveError):
        purge(session, [], retention_days=180, now=NOW)
    assert len(records(log)) == 9


def test_records_within_the_retention_are_never_archived(
    log: sessionmaker[Session], tmp_path: Path
) -> None:
    key = new_key(tmp_path / "key.pem")
    with log() as session:
        assert archive(session, tmp_path, key, older_than=OLD - timedelta(days=1), now=NOW) is None
