"""Tamper evidence: one byte changed, one row deleted, one row inserted, a tail cut off
after a signed checkpoint: ``verify`` names the exact record (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapter.audit.chain import chain_hash
from adapter.audit.checkpoints import make_checkpoint, stored_checkpoints
from adapter.audit.signing import load_private, new_key
from adapter.cli import app
from adapter.store.body_codec import AUDIT, json_bytes, pack_json
from tests.audit.audit_support import (
    change_text,
    check,
    delete_row,
    fill,
    flip_byte,
    insert_row,
    records,
    set_stored_body,
    stored_body,
)


@pytest.fixture
def filled(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    fill(session_factory)
    return session_factory


def test_an_untouched_log_verifies_and_chains_every_record(filled: sessionmaker[Session]) -> None:
    rows = records(filled)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))
    report = check(filled)
    assert report.ok and report.records == len(rows) == 7
    assert report.head == rows[-1]["hash"]


def test_one_byte_changed_is_named(filled: sessionmaker[Session]) -> None:
    flip_byte(filled, 3)
    report = check(filled)
    assert [(f.kind, f.seq) for f in report.findings] == [("changed", 3)]
    assert "no longer matches its hash" in report.findings[0].text


def test_one_character_of_the_text_changed_is_named(filled: sessionmaker[Session]) -> None:
    change_text(filled, 4)  # stored as plain text, as the rows from before migration 0027
    report = check(filled)
    assert [(f.kind, f.seq) for f in report.findings] == [("changed", 4)]
    assert "no longer matches its hash" in report.findings[0].text


def test_bodies_are_stored_as_frames_of_the_text_the_chain_is_over(
    filled: sessionmaker[Session],
) -> None:
    rows = records(filled)
    for row in rows:
        stored = stored_body(filled, row["seq"])
        assert isinstance(stored, bytes) and len(stored) < len(row["body"].encode())
        assert json_bytes(stored).decode() == row["body"]  # the exact canonical text
        assert chain_hash(row["prev_hash"], row["body"]) == row["hash"]


def test_old_plain_rows_and_a_frame_of_the_same_text_verify_alike(
    filled: sessionmaker[Session],
) -> None:
    """A log whose records before migration 0027 are plain text and after it frames: both
    read as their text, the chain holds across (the form is not what the hash is over)."""
    rows = records(filled)
    with filled() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
    for row in rows[:4]:  # the first four as an older adapter stored them
        set_stored_body(filled, row["seq"], row["body"] if sqlite else row["body"].encode())
    assert check(filled).ok
    assert [r["body"] for r in records(filled)] == [r["body"] for r in rows]
    set_stored_body(filled, 2, pack_json(rows[1]["body"].encode(), AUDIT))  # framed again
    assert check(filled).ok


def test_a_frame_of_other_text_is_named(filled: sessionmaker[Session]) -> None:
    """A well-formed frame whose text is not the one hashed: changed."""
    original = records(filled)[5]["body"]
    body = original.replace('"outcome":"', '"outcome":"x', 1)
    assert body != original
    set_stored_body(filled, 6, pack_json(body.encode(), AUDIT))
    assert [(f.kind, f.seq) for f in check(filled).findings] == [("changed", 6)]


def test_an_indexed_column_changed_is_named(filled: sessionmaker[Session]) -> None:
    with filled.begin() as session:
        session.execute(text("UPDATE audit_record SET actor = 'someone' WHERE seq = 2"))
    assert [(f.kind, f.seq) for f in check(filled).findings] == [("changed", 2)]


def test_one_row_deleted_is_named(filled: sessionmaker[Session]) -> None:
    delete_row(filled, 4)
    report = check(filled)
    assert [(f.kind, f.seq) for f in report.findings] == [("removed", 4)]


def test_one_row_inserted_is_named(filled: sessionmaker[Session]) -> None:
    insert_row(filled, after=2)
    report = check(filled)
    assert [(f.kind, f.seq) for f in report.findings] == [("inserted", 3)]


def test_a_cut_tail_is_found_by_a_signed_checkpoint(
    filled: sessionmaker[Session], tmp_path: Path
) -> None:
    key = new_key(tmp_path / "audit.pem")
    with filled.begin() as session:
        made = make_checkpoint(session, key, now=datetime.now(UTC))
    assert made is not None and made.seq == 7
    with filled() as session:
        exported = stored_checkpoints(session)
    # the intruder removes the last two records and the table's checkpoints: the exported
    # checkpoint, kept elsewhere, still tells
    with filled.begin() as session:
        session.execute(text("DELETE FROM audit_checkpoint"))
    delete_row(filled, 7)
    delete_row(filled, 6)
    assert check(filled).ok  # without the checkpoint a cut tail looks like a shorter log
    report = check(filled, public=key.public_key(), external=exported)
    assert [(f.kind, f.seq) for f in report.findings] == [("removed", 6)]


def test_a_rewritten_log_differs_from_its_signed_checkpoint(
    filled: sessionmaker[Session], tmp_path: Path
) -> None:
    key = new_key(tmp_path / "audit.pem")
    with filled.begin() as session:
        make_checkpoint(session, key, now=datetime.now(UTC))
    with filled() as session:
        exported = stored_checkpoints(session)
    other = load_private(tmp_path / "audit.pem")  # the same key, read back from its file
    assert other.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    statement, signature = exported[0]
    forged = [(statement.replace('"seq":7', '"seq":5'), signature)]
    report = check(filled, public=key.public_key(), external=forged)
    assert [f.kind for f in report.findings] == ["signature"]


def test_the_cli_names_the_first_bad_record(
    filled: sessionmaker[Session], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    from adapter.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "7 records (1..7), 0 checkpoints: ok" in ok.output
    flip_byte(filled, 5)
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "record 5 changed" in bad.output
    get_settings.cache_clear()
