"""File drops: the destination (atomic writes, naming) and the source (done/, error/, crash
safety by claiming into processing/ and the pipeline's sha256 deduplication)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.errors import ConfigError, RetriableDeliveryError
from adapter.inbound import build_source
from adapter.inbound.file_drop import FileSource
from adapter.inbound.poller import poll_once
from adapter.store import make_engine
from adapter.store import session_factory as factory_for
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import destination, items, observation, patient
from tests.integration.connector_helpers import example_pipeline as _pipeline
from tests.integration.connector_helpers import example_translator as _translator

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru" / "std-hl7v2"
BAD = ROOT / "fixtures" / "hl7v2" / "bad"


# -- destination ------------------------------------------------------------------------------
def test_one_file_per_resource_named_by_the_template(tmp_path: Path) -> None:
    dest = destination(
        "file",
        {"path": str(tmp_path), "naming": "{destination}_{resource_type}_{resource_id}.json"},
    )
    results = dest.send(items(patient("p1"), observation("o1", 5.1)))
    assert [(r.ok, r.status) for r in results] == [(True, "written"), (True, "written")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hospital_Observation_o1.json",
        "hospital_Patient_p1.json",
    ]
    body = json.loads((tmp_path / "hospital_Observation_o1.json").read_text())
    assert body["valueQuantity"]["value"] == 5.1
    assert body["meta"] == {"profile": ["http://example.cn/StructureDefinition/lab"]}
    # a resend replaces the file: still one per resource, with the current content
    assert dest.send(items(observation("o1", 6.2), first_id=7))[0].ok
    assert len(list(tmp_path.iterdir())) == 2
    body = json.loads((tmp_path / "hospital_Observation_o1.json").read_text())
    assert body["valueQuantity"]["value"] == 6.2


def test_bundle_layout_writes_one_transaction_per_batch(tmp_path: Path) -> None:
    dest = destination(
        "file",
        {
            "path": str(tmp_path),
            "layout": "bundle",
            "bundle_naming": "batch-{first_outbox_id}-{count}.json",
        },
    )
    results = dest.send(items(patient("p1"), observation("o1"), first_id=40))
    assert all(r.ok for r in results)
    [written] = list(tmp_path.iterdir())
    assert written.name == "batch-40-2.json"
    bundle = json.loads(written.read_text())
    assert bundle["type"] == "transaction"
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": "Patient/p1"},
        {"method": "PUT", "url": "Observation/o1"},
    ]


def test_a_failed_write_leaves_no_partial_file_and_is_retriable(tmp_path: Path) -> None:
    (tmp_path / "Observation-o1.json").mkdir()  # the name is taken by a folder: rename fails
    dest = destination("file", {"path": str(tmp_path)})
    [result] = dest.send(items(observation("o1")))
    assert isinstance(result.error, RetriableDeliveryError)
    assert [p.name for p in tmp_path.iterdir()] == ["Observation-o1.json"]  # no .tmp left


def test_file_destination_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        destination("file", {"path": str(tmp_path), "naming": "{resource}.json"})
    assert caught.value.key == "destinations.hospital.settings.naming"
    assert "{resource_type}" in caught.value.message
    with pytest.raises(ConfigError):
        destination("file", {"path": str(tmp_path), "naming": "../{resource_id}.json"})
    missing = destination("file", {"path": str(tmp_path / "nope")})
    check = missing.check()
    assert not check.reachable and "no folder" in check.error
    assert destination("file", {"path": str(tmp_path)}).check().reachable


# -- source -----------------------------------------------------------------------------------
def _source(inbox: Path, **settings: object) -> FileSource:
    facility, source = _translator().consortium.source("std-hl7v2")  # type: ignore[misc]
    connector = {"kind": "file", "path": str(inbox), "min_age_seconds": 0, **settings}
    built = build_source(facility, source.model_copy(update={"connector": connector}))
    assert isinstance(built, FileSource)
    return built


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(InboundMessage))


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _drop(inbox: Path, *files: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for path in files:
        (inbox / path.name).write_bytes(path.read_bytes())


def test_files_go_to_done_or_to_error_with_the_error_beside_them(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7", BAD / "bad-segment-name.hl7")
    (inbox / "notes.txt").write_text("not for us")
    (inbox / ".partial.hl7").write_text("being written")
    source = _source(inbox, pattern="*.hl7")
    try:
        summary = poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert (summary.read, summary.stored, summary.quarantined) == (2, 1, 1)
    assert _names(inbox) == ["done", "error", "notes.txt", "processing"]
    assert _names(inbox / "done") == ["cbc-basic.hl7"]
    assert _names(inbox / "processing") == []
    assert _names(inbox / "error") == ["bad-segment-name.hl7", "bad-segment-name.hl7.error.json"]
    report = json.loads((inbox / "error" / "bad-segment-name.hl7.error.json").read_text())
    assert report["status"] == "quarantined"
    assert report["issues"][0]["severity"] in ("error", "fatal")
    with session_factory() as session:
        quarantined = session.get(InboundMessage, report["message_id"])
        assert quarantined is not None and quarantined.status == "quarantined"
    assert _count(session_factory) == 2


def test_young_files_wait_and_same_names_never_overwrite(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7")
    young = _source(inbox, min_age_seconds=3600)
    try:
        assert poll_once(young, _pipeline(session_factory)).read == 0
    finally:
        young.close()
    source = _source(inbox)
    try:
        poll_once(source, _pipeline(session_factory))
        # another file of the same name, other content
        (inbox / "cbc-basic.hl7").write_bytes((ORU / "two-orders.hl7").read_bytes())
        poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert _names(inbox / "done") == ["cbc-basic.hl7", "cbc-basic.hl7.1"]
    assert _count(session_factory) == 2


def test_a_claimed_file_not_yet_ingested_when_the_process_died_is_ingested_next_time(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7")
    dying = _source(inbox)
    documents = dying.read(None)
    next(documents)  # claimed ... and the process "dies" before ingesting it
    documents.close()
    dying.close()
    assert _names(inbox / "processing") == ["cbc-basic.hl7"]
    assert _count(session_factory) == 0
    source = _source(inbox)
    try:
        summary = poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert (summary.read, summary.stored) == (1, 1)
    assert _names(inbox / "done") == ["cbc-basic.hl7"]
    assert _count(session_factory) == 1


_DIE_AFTER_INGEST = """
import copy, os, sys
from pathlib import Path
from adapter.inbound import build_source
from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline, Receipt
from adapter.store import make_engine, session_factory
root, url, inbox = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
consortium = load_consortium(root / "fixtures" / "consortium.yaml")
pipeline = Pipeline(consortium, session_factory(make_engine(url)),
                    mappings_dir=root / "mappings", max_bytes=5_000_000,
                    default_timezone="Asia/Shanghai")
facility, system = consortium.source("std-hl7v2")
source = build_source(facility, system.model_copy(update={"connector": {
    "kind": "file", "path": inbox, "min_age_seconds": 0}}))
document = next(source.read(None))
result = pipeline.ingest(document.raw, Receipt("std-hl7v2", "file-drop", document.name))
print(result.status, flush=True)
os._exit(9)  # killed after the commit, before the file was moved to done/
"""


def test_a_process_killed_after_storing_a_file_does_not_store_it_twice(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7")
    done = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_INGEST, str(ROOT), database_url, str(inbox)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 9, done.stderr
    assert done.stdout.strip() == "processed"
    assert _names(inbox / "processing") == ["cbc-basic.hl7"]  # the dead process's claim
    assert _count(session_factory) == 1
    source = _source(inbox)
    try:
        summary = poll_once(source, _pipeline(session_factory))
    finally:
        source.close()
    assert (summary.read, summary.duplicates, summary.stored) == (1, 1, 0)
    assert _names(inbox / "done") == ["cbc-basic.hl7"]
    assert _count(session_factory) == 1


def test_a_file_that_cannot_be_stored_stays_claimed_and_the_round_stops(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7")
    os.utime(inbox / "cbc-basic.hl7", (1, 1))  # the older one: read first
    _drop(inbox, ORU / "two-orders.hl7")
    broken = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    source = _source(inbox)
    try:
        summary = poll_once(source, _pipeline(factory_for(broken)))
        assert (summary.read, summary.failed) == (1, 1)
        assert "not stored" in summary.error
        assert _names(inbox / "processing") == ["cbc-basic.hl7"]
        assert "two-orders.hl7" in _names(inbox)  # not even claimed
        summary = poll_once(source, _pipeline(session_factory))  # the database is back
    finally:
        source.close()
        broken.dispose()
    assert (summary.read, summary.stored) == (2, 2)
    assert _names(inbox / "done") == ["cbc-basic.hl7", "two-orders.hl7"]


def test_a_second_poller_on_the_same_folder_reads_nothing(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "cbc-basic.hl7")
    first, second = _source(inbox), _source(inbox)
    try:
        reading = first.read(None)
        assert next(reading).name == "cbc-basic.hl7"  # holds the folder's lock from now on
        assert list(second.read(None)) == []
        reading.close()
    finally:
        first.close()
        second.close()
    assert _names(inbox / "processing") == ["cbc-basic.hl7"]


def test_file_source_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _source(tmp_path, interval=5)
    assert caught.value.key == "sources.std-hl7v2.connector.interval"
    assert not _source(tmp_path / "missing").check().reachable
    assert _source(tmp_path).check().reachable


def test_an_oversize_file_is_kept_as_its_first_bytes_and_moved_aside_whole(
    tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    inbox = tmp_path / "inbox"
    _drop(inbox, ORU / "two-orders.hl7")
    cbc = (ORU / "cbc-basic.hl7").read_bytes()
    huge = cbc + b"NTE|2||" + b"x" * 300_000 + b"\r"
    (inbox / "huge.hl7").write_bytes(huge)
    pipeline = _pipeline(session_factory)
    pipeline.max_bytes, pipeline.keep_bytes = 100_000, 2000
    source = _source(inbox)
    try:
        summary = poll_once(source, pipeline)
    finally:
        source.close()
    assert (summary.read, summary.stored, summary.quarantined) == (2, 1, 1)
    assert _names(inbox / "error") == ["huge.hl7", "huge.hl7.error.json"]
    assert (inbox / "error" / "huge.hl7").read_bytes() == huge  # the file itself is intact
    report = json.loads((inbox / "error" / "huge.hl7.error.json").read_text())
    assert report["issues"][0]["code"] == "too-long"
    assert f"the document is {len(huge)} bytes" in report["issues"][0]["diagnostics"]
    with session_factory() as session:
        kept = session.get(InboundMessage, report["message_id"])
        assert kept is not None
        assert (kept.status, kept.size, kept.raw) == ("quarantined", len(huge), huge[:2000])
