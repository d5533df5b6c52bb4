"""adapter sync over a night of files: a dated export folder with a manifest; 1 % of the
listed files missing are found by report number and replayed; corrections and deletions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.store.models import InboundMessage, SyncItem
from tests.sync.support import (
    FACILITY,
    SOURCE_SYSTEM,
    consortium_file,
    environment,
    lab_report,
    report_key,
    run_cli,
    sync_json,
)

DAY = date(2026, 11, 20)


def _night(folder: Path, numbers: range, missing: set[int]) -> None:
    folder.mkdir(parents=True)
    lines = ["file,key,op"]
    for number in numbers:
        name = f"{report_key(number)}.hl7"
        lines.append(f"{name},{report_key(number)},new")
        if number not in missing:
            (folder / name).write_bytes(lab_report(number))
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _source(root: Path) -> dict[str, object]:
    return {
        "id": "county-lab-night",
        "facility": FACILITY,
        "source": SOURCE_SYSTEM,
        "document_kind": "lab-report",
        "files": {"path": str(root / "{date:%Y%m%d}"), "manifest": "manifest.csv"},
    }


def test_a_file_night_with_1_percent_missing_lists_them_by_key_and_replays_only_them(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "exports"
    folder = root / "20261120"
    _night(folder, range(1, 101), missing={37})
    env = environment(database_url, consortium_file(tmp_path, [_source(root)]))

    code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    assert code == 1  # gaps remain
    [part] = report["sources"]
    assert part["source"] == {"how": "manifest", "count": 100, "listed": 100}
    assert part["received"]["total"] == 99
    assert part["received"]["processed"] == 99
    assert part["gaps"]["missing"] == [report_key(37)]

    # the file arrives late; the replay reads only it
    (folder / f"{report_key(37)}.hl7").write_bytes(lab_report(37))
    with session_factory() as session:
        before = session.scalar(select(func.count()).select_from(InboundMessage))
    code, report = sync_json(
        env, "--day", DAY.isoformat(), "--replay-gaps", monkeypatch=monkeypatch
    )
    assert code == 0, report
    [part] = report["sources"]
    assert part["gaps"]["missing"] == []
    assert part["replayed"] == [report_key(37)]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == before + 1
        # each document's receipt names the way in and which item of the night it was
        late = session.scalars(
            select(InboundMessage).order_by(InboundMessage.received_at.desc()).limit(1)
        ).one()
        assert (late.channel, late.peer) == ("sync", f"county-lab-night:{report_key(37)}")

    code, text = run_cli(env, "sync", "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    assert code == 0
    assert "全部对平" in text and "适配器接收: 100" in text


def test_a_corrected_and_a_deleted_report_are_reported_and_the_correction_stored(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "exports"
    folder = root / "20261120"
    _night(folder, range(1, 4), missing=set())
    env = environment(database_url, consortium_file(tmp_path, [_source(root)]))
    assert sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)[0] == 0

    # the LIS re-exports report 2 corrected and voids report 3 (its file removed)
    (folder / f"{report_key(2)}.hl7").write_bytes(lab_report(2, wbc="9.8"))
    (folder / f"{report_key(3)}.hl7").unlink()
    manifest = (folder / "manifest.csv").read_text(encoding="utf-8")
    manifest = manifest.replace(f"{report_key(2)},new", f"{report_key(2)},corrected")
    manifest = manifest.replace(f"{report_key(3)},new", f"{report_key(3)},deleted")
    (folder / "manifest.csv").write_text(manifest, encoding="utf-8")

    code, report = sync_json(env, "--day", DAY.isoformat(), "--lang", "en", monkeypatch=monkeypatch)
    assert code == 0, report
    [part] = report["sources"]
    assert part["corrected"] == [report_key(2)]
    assert part["deleted"] == [report_key(3)]
    with session_factory() as session:
        item = session.get(SyncItem, ("county-lab-night", report_key(2)))
        assert item is not None and item.versions == 2
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 4


def test_a_missing_export_folder_exits_2_with_the_reason(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "exports"
    root.mkdir()
    env = environment(database_url, consortium_file(tmp_path, [_source(root)]))
    code, text = run_cli(
        env, "sync", "--day", DAY.isoformat(), "--lang", "en", monkeypatch=monkeypatch
    )
    assert code == 2
    assert f"source unreachable: no export folder {root / '20261120'}" in text


def test_a_file_of_two_messages_is_two_items_each_counted_by_its_own_key(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: an export file holding two messages, the second cut off after its OBR
    (inside a UTF-8 character): the first is stored, the second quarantined, and the night
    counts and lists them as ``<key>#1`` and ``<key>#2``."""
    root = tmp_path / "exports"
    folder = root / "20261120"
    _night(folder, range(1, 3), missing=set())
    second = lab_report(3)
    obr = second.index(b"\rOBR|")
    cut = second[: next(i for i in range(obr, len(second)) if second[i] >= 0x80) + 1]
    both = lab_report(2).rstrip(b"\r\n") + b"\n\n" + cut
    (folder / f"{report_key(2)}.hl7").write_bytes(both)
    env = environment(database_url, consortium_file(tmp_path, [_source(root)]))

    code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    [part] = report["sources"]
    assert part["source"] == {"how": "manifest", "count": 3, "listed": 3}, part
    assert part["received"]["total"] == 3, part
    assert part["received"]["processed"] == 2, part
    assert part["gaps"]["missing"] == []
    assert part["gaps"]["quarantined"] == [f"{report_key(2)}#2"], part
    assert code == 1  # the quarantined one is a gap
    with session_factory() as session:
        rows = {m.peer: (m.status, bytes(m.raw)) for m in session.scalars(select(InboundMessage))}
    assert rows[f"county-lab-night:{report_key(2)}#1"] == (
        "processed",
        lab_report(2).rstrip(b"\r\n"),
    )
    assert rows[f"county-lab-night:{report_key(2)}#2"] == ("quarantined", cut)
    assert rows[f"county-lab-night:{report_key(1)}"][0] == "processed"

    # the LIS exports the file again, whole: the replay reads only the quarantined message
    (folder / f"{report_key(2)}.hl7").write_bytes(lab_report(2) + b"\n" + lab_report(3))
    code, report = sync_json(
        env, "--day", DAY.isoformat(), "--replay-gaps", monkeypatch=monkeypatch
    )
    [part] = report["sources"]
    assert part["replayed"] == [f"{report_key(2)}#2"], part
    assert part["gaps"]["quarantined"] == [] and code == 0, part


def test_a_key_longer_than_the_ledger_column_is_a_gap_on_both_databases_and_never_stored(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``sync_item.item_key`` is varchar(255): PostgreSQL refused the ledger row of a longer
    key after the document was stored (the run failed, and failed again at every start),
    SQLite kept it whole. Now neither stores it: the key is a gap, the others are stored."""
    root = tmp_path / "exports"
    folder = root / "20261120"
    _night(folder, range(1, 4), missing=set())
    long_key = "R" + "9" * 299  # 300 characters
    (folder / f"{report_key(2)}.hl7").rename(folder / "long.hl7")
    manifest = (folder / "manifest.csv").read_text(encoding="utf-8")
    manifest = manifest.replace(f"{report_key(2)}.hl7,{report_key(2)}", f"long.hl7,{long_key}")
    (folder / "manifest.csv").write_text(manifest, encoding="utf-8")
    env = environment(database_url, consortium_file(tmp_path, [_source(root)]))

    with caplog.at_level("WARNING"):
        code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    assert code == 1, report  # a gap remains, the run finished
    [part] = report["sources"]
    assert part["received"]["total"] == 2
    assert part["gaps"]["missing"] == [long_key]
    with session_factory() as session:
        keys = session.scalars(select(SyncItem.item_key)).all()
        assert sorted(keys) == [report_key(1), report_key(3)]
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 2
    said = [r.getMessage() for r in caplog.records if "item_key" in r.getMessage()]
    assert said and "300 characters; at most 255" in said[0]
    assert long_key not in said[0]

    # started again (the run is finished: a new run of the same day) nothing changes
    code, report = sync_json(env, "--day", DAY.isoformat(), monkeypatch=monkeypatch)
    assert code == 1 and report["sources"][0]["gaps"]["missing"] == [long_key]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"no message here",
        lab_report(1),
        lab_report(1) + b"\n" + lab_report(2),
        lab_report(1).replace(b"OBX|1|", b"OBX|1|MSH text|", 1),  # MSH not at a line start
        b"FHS|^~\\&|LIS\rBHS|^~\\&|LIS\r" + lab_report(1) + b"BTS|1\rFTS|1\r",  # batch of one
        b"BHS|^~\\&|LIS\r" + lab_report(1) + lab_report(2) + b"BTS|2\r",
        b'<?xml version="1.0"?><ClinicalDocument>MSH|^~\\&| BHS</ClinicalDocument>',
    ],
)
def test_the_reports_count_of_a_files_messages_is_what_the_split_finds(raw: bytes) -> None:
    """The report counts a night's messages without splitting a file that cannot hold more
    than one (no second MSH, no batch segment): the same count as reading it item by item."""
    from adapter.hl7v2.split import split_messages
    from adapter.sync.config import FileNight
    from adapter.sync.files import FileFetcher

    fetcher = FileFetcher(FileNight(path="/nowhere/{date:%Y%m%d}"))
    assert fetcher._count(raw) == len(split_messages(raw))
