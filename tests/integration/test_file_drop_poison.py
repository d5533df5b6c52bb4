"""File drops with poison files (issue 8, finding 5): names that are not UTF-8 (GBK), names
of 250 bytes, things that are not files, files that cannot be stored. Each is moved to
error/ with a reason file; the good files around them are ingested; ``adapter poll`` keeps
running and starts again without crashing. Real files on disk, a real database."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.inbound import build_source
from adapter.inbound.file_drop import FileSource
from adapter.inbound.poller import poll_once
from adapter.store import make_engine, migrate
from adapter.store import session_factory as factory_for
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import example_pipeline as _pipeline
from tests.integration.connector_helpers import example_translator as _translator

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2"
GOOD = [ORU / n for n in ("cbc-basic.hl7", "two-orders.hl7", "sn-cwe.hl7", "urine-cwe.hl7")]
GBK_GOOD = "检验结果.hl7".encode("gbk")
GBK_BAD = "坏消息.hl7".encode("gbk")
LONG_GOOD = "g" * 246 + ".hl7"  # 250 bytes: name + ".error.json" is over 255
LONG_BAD = "b" * 246 + ".hl7"


def _source(inbox: Path, **settings: object) -> FileSource:
    facility, source = _translator().consortium.source("std-hl7v2")  # type: ignore[misc]
    connector = {"kind": "file", "path": str(inbox), "min_age_seconds": 0, **settings}
    built = build_source(facility, source.model_copy(update={"connector": connector}))
    assert isinstance(built, FileSource)
    return built


def _names(folder: Path) -> set[bytes]:
    if not folder.is_dir():
        return set()
    return {n for n in os.listdir(os.fsencode(folder)) if not n.startswith(b".")}


def _write(folder: Path, name: str | bytes, data: bytes, age: float = 0) -> None:
    path = os.path.join(os.fsencode(folder), os.fsencode(name))
    with open(path, "wb") as handle:
        handle.write(data)
    stamp = time.time() - 100 + age  # the order they are read in
    os.utime(path, (stamp, stamp))


def _poison_folder(inbox: Path) -> None:
    inbox.mkdir(parents=True)
    _write(inbox, "first.hl7", GOOD[0].read_bytes(), 0)
    _write(inbox, GBK_GOOD, GOOD[1].read_bytes(), 1)
    _write(inbox, GBK_BAD, b"not a message at all", 2)
    _write(inbox, LONG_GOOD, GOOD[2].read_bytes(), 3)
    _write(inbox, LONG_BAD, b"garbage again", 4)
    os.mkfifo(inbox / "pipe.hl7")  # a reader would block on it for ever
    (inbox / "folder.hl7").mkdir()  # a sub-folder with a message-like name
    _write(inbox, "last.hl7", GOOD[3].read_bytes(), 9)


def _report(inbox: Path, name: bytes) -> dict:
    path = os.path.join(os.fsencode(inbox / "error"), name + b".error.json")
    with open(path, "rb") as handle:
        return json.loads(handle.read())


def test_poison_names_and_non_files_are_set_aside_and_the_good_files_go_through(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _poison_folder(inbox)
    source = _source(inbox)
    try:
        summary = poll_once(source, _pipeline(session_factory))
        assert summary.error is None, summary.error
        again = poll_once(source, _pipeline(session_factory))  # nothing left to stumble on
    finally:
        source.close()
    assert (summary.read, summary.stored, summary.quarantined) == (6, 4, 2)
    assert (again.read, again.error) == (0, None)
    assert _names(inbox / "done") == {b"first.hl7", GBK_GOOD, LONG_GOOD.encode(), b"last.hl7"}
    assert _names(inbox / "processing") == set()
    error = _names(inbox / "error")
    assert {GBK_BAD, GBK_BAD + b".error.json", b"pipe.hl7", b"pipe.hl7.error.json"} <= error
    long_kept = [n for n in error if n.startswith(b"bbbb") and not n.endswith(b".error.json")]
    assert len(long_kept) == 1 and long_kept[0] + b".error.json" in error
    assert _names(inbox) == {b"done", b"error", b"processing", b"folder.hl7"}  # left alone
    # the reason files name the file readably, whatever its encoding
    gbk = _report(inbox, GBK_BAD)
    assert gbk["file"] == "坏消息.hl7"
    assert gbk["file_name_bytes_hex"] == GBK_BAD.hex()
    assert gbk["status"] == "quarantined" and gbk["issues"][0]["location"]
    long_report = _report(inbox, long_kept[0])
    assert long_report["file"] == LONG_BAD and long_report["moved_as"] != LONG_BAD
    assert "FIFO" in _report(inbox, b"pipe.hl7")["reason"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 6


def _sqlite_with_a_poisoned_insert(path: Path, poison: bytes):
    """A real database that refuses to store one document (as PostgreSQL refused long
    index rows, issue 8 finding 1) while it answers everything else. It knows the document
    by its sha256 (stored as its 32 bytes, decision 0081): the bytes are stored compressed
    (decision 0065)."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT ON inbound_message "
            f"WHEN NEW.sha256 = X'{hashlib.sha256(poison).hexdigest()}' "
            "BEGIN SELECT RAISE(ABORT, 'cannot store this one'); END"
        )
    return engine


def test_a_file_that_cannot_be_stored_is_set_aside_after_max_attempts(tmp_path: Path) -> None:
    poison = GOOD[0].read_bytes().replace(b"NTE|1|L|", b"NTE|1|L|POISON ")
    engine = _sqlite_with_a_poisoned_insert(tmp_path / "adapter.db", poison)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _write(inbox, "poison.hl7", poison, 0)
    _write(inbox, "good.hl7", GOOD[1].read_bytes(), 5)
    source = _source(inbox, max_attempts=2)
    pipeline = _pipeline(factory_for(engine))
    try:
        rounds = [poll_once(source, pipeline) for _ in range(3)]
    finally:
        source.close()
        engine.dispose()
    # two tries (the round stops, files keep their order), then it is set aside and the
    # rest of the folder goes on
    assert [(r.read, r.failed, r.stored) for r in rounds] == [(1, 1, 0), (1, 1, 0), (1, 0, 1)]
    assert _names(inbox / "done") == {b"good.hl7"}
    assert _names(inbox / "error") == {b"poison.hl7", b"poison.hl7.error.json"}
    assert (inbox / "error" / "poison.hl7").read_bytes() == poison  # intact
    reason = _report(inbox, b"poison.hl7")["reason"]
    assert reason.startswith("could not be stored in 2 attempts (last error: IntegrityError")


def test_a_database_outage_does_not_count_as_attempts(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _write(inbox, "cbc.hl7", GOOD[0].read_bytes())
    down = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'adapter.db'}")
    source = _source(inbox, max_attempts=1)
    try:
        rounds = [poll_once(source, _pipeline(factory_for(down))) for _ in range(3)]
    finally:
        source.close()
        down.dispose()
    assert [r.failed for r in rounds] == [1, 1, 1]
    assert _names(inbox / "processing") == {b"cbc.hl7"}  # kept claimed, not set aside
    assert _names(inbox / "error") == set()


def _consortium_with(path: Path, connector: dict) -> Path:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    for facility in data["facilities"]:
        facility["destinations"] = []
        for source in facility["sources"]:
            if source["id"] == "std-hl7v2":
                source["connector"] = connector
    data["routes"] = []
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_adapter_poll_keeps_running_through_poison_files_and_restarts_cleanly(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _poison_folder(inbox)
    # what a crashed earlier run left claimed: a GBK-named file that is quarantined
    (inbox / "processing").mkdir()
    _write(inbox / "processing", "旧的坏文件.hl7".encode("gbk"), b"MSH|broken", 0)
    config = _consortium_with(
        tmp_path / "consortium.yaml",
        {"kind": "file", "path": str(inbox), "min_age_seconds": 0, "interval_seconds": 0.5},
    )
    environment = {
        **os.environ,
        "ADAPTER_CONFIG": str(config),
        "ADAPTER_DATABASE_URL": database_url,
        "ADAPTER_MAPPINGS_DIR": str(ROOT / "mappings"),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "adapter.cli", "poll"]
    process = subprocess.Popen(
        command, env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while len(_names(inbox / "done")) < 4 or _names(inbox / "processing"):
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the good files were not ingested"
            time.sleep(0.2)
        _write(inbox, "later.hl7", (ORU / "gb18030-hba1c.hl7").read_bytes(), 20)
        while b"later.hl7" not in _names(inbox / "done"):  # it still polls
            assert process.poll() is None, process.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "a file dropped later was not ingested"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "旧的坏文件.hl7".encode("gbk") in _names(inbox / "error")
    # a restart over the same folder (poison files still in error/) does not crash
    _write(inbox, "坏的又来了.hl7".encode("gbk"), b"still not a message", 30)
    restart = subprocess.run(
        [*command, "--once"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        timeout=180,
    )
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert b"1 read, 0 stored, 0 already received, 1 quarantined" in restart.stdout
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 9
