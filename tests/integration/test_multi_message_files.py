"""Files that hold several HL7 v2 messages (issue 15): one message per MSH, each ingested on
its own, so a message cut off at the end of a LIS export costs only itself.

The file is fictitious: the 博恒 LIS GBK fixture twice, a blank line between, the second one
given its own control id and cut off after its OBR: inside the first GBK character of its SPM
(血, half of it), as an export that broke off leaves it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.hl7v2.split import split_messages
from adapter.inbound import build_source
from adapter.inbound.file_drop import FileSource
from adapter.inbound.poller import poll_once
from adapter.store.models import InboundMessage
from tests.integration.connector_helpers import example_pipeline, example_translator
from tests.integration.test_cli import env, run  # noqa: F401 (env: a fixture)

ROOT = Path(__file__).resolve().parents[2]
GBK_OUL = ROOT / "fixtures" / "hl7v2" / "oul" / "county-lis-boheng" / "tumour-markers-gbk.hl7"
SOURCE = "county-lis-boheng"


def _two_messages() -> tuple[bytes, bytes, bytes]:
    """(the file, its first message, its second message as cut)."""
    first = GBK_OUL.read_bytes()
    second = first.replace(b"|BH202612030388|", b"|BH202612030389|", 1)
    assert second != first
    spm = second.index(b"\rSPM|")
    cut = second[: second.index("血".encode("gbk"), spm) + 1]  # half a GBK character
    return first.rstrip(b"\r\n") + b"\r\n\r\n" + cut, first.rstrip(b"\r\n"), cut


def test_the_split_keeps_each_message_s_own_bytes() -> None:
    data, first, second = _two_messages()
    parts = split_messages(data)
    assert [p.raw for p in parts] == [first, second]
    assert [p.label("x.hl7") for p in parts] == [
        "x.hl7 [message 1 of 2]",
        "x.hl7 [message 2 of 2]",
    ]
    assert data[parts[1].start :] == second
    # no slice ends inside a GBK character: each decodes on its own, as in the file
    assert data.startswith(first + b"\r\n\r\n")
    assert first.decode("gbk") in data.decode("gbk", errors="replace")


def test_a_batch_file_gives_its_messages_without_the_wrappers() -> None:
    one = GBK_OUL.read_bytes().rstrip(b"\r")
    two = one.replace(b"|BH202612030388|", b"|BH202612030390|", 1)
    batch = (
        b"FHS|^~\\&|BHLIS|QSXRMYY\rBHS|^~\\&|BHLIS|QSXRMYY\r"
        + one
        + b"\r"
        + two
        + b"\rBTS|2\rFTS|1\r"
    )
    assert [p.raw for p in split_messages(batch)] == [one, two]
    # a batch of one is the message alone
    assert [p.raw for p in split_messages(b"BHS|^~\\&\n" + one + b"\nBTS|1\n")] == [one]


def test_what_is_not_split() -> None:
    one = GBK_OUL.read_bytes()
    assert [p.raw for p in split_messages(one)] == [one]  # one message: unchanged bytes
    xml = b"<Bundle>\rMSH|^~\\&|\rMSH|^~\\&|</Bundle>"
    assert [p.raw for p in split_messages(xml)] == [xml]
    data, _, _ = _two_messages()
    assert len(split_messages(data, "application/xml")) == 1
    assert len(split_messages(data, "application/fhir+json")) == 1


def _messages(factory: sessionmaker[Session]) -> dict[str, tuple[str, bytes, list]]:
    """peer: (status, raw bytes, issues) of every stored message."""
    with factory() as session:
        return {
            m.peer: (m.status, bytes(m.raw), list(m.issues or []))
            for m in session.scalars(select(InboundMessage))
        }


def test_adapter_ingest_stores_the_first_and_quarantines_the_cut_one(
    env: pytest.MonkeyPatch,  # noqa: F811
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    data, first, second = _two_messages()
    path = tmp_path / "export-20261203.hl7"
    path.write_bytes(data)
    result = run("ingest", path, "--source", SOURCE)
    out = result.output
    assert result.exit_code == 1, out  # one quarantined
    head, tail = out.split("[message 2 of 2]")
    assert "[message 1 of 2]: processed" in head, out
    assert tail.startswith(": quarantined"), out
    assert " at SPM[1]" in tail  # the error is located: where the message stops
    rows = _messages(session_factory)
    assert len(rows) == 2
    status, raw, _ = rows["export-20261203.hl7 [message 1 of 2]"]
    assert status == "processed" and raw == first
    status, raw, issues = rows["export-20261203.hl7 [message 2 of 2]"]
    assert status == "quarantined" and raw == second
    assert any(i.get("location") == "SPM[1]" for i in issues), issues


def test_the_file_drop_stores_the_first_and_sets_the_file_aside_with_each_outcome(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    data, first, second = _two_messages()
    inbox = tmp_path / "inbox"
    facility, source = example_translator().consortium.source(SOURCE)  # type: ignore[misc]
    connector = {"kind": "file", "path": str(inbox), "min_age_seconds": 0}
    drop = build_source(facility, source.model_copy(update={"connector": connector}))
    assert isinstance(drop, FileSource)
    inbox.mkdir()
    (inbox / "lis.hl7").write_bytes(data)
    stamp = time.time() - 100
    os.utime(inbox / "lis.hl7", (stamp, stamp))
    pipeline = example_pipeline(session_factory)
    try:
        summary = poll_once(drop, pipeline)
    finally:
        drop.close()
    assert (summary.read, summary.stored, summary.quarantined) == (2, 1, 1), str(summary)
    assert (inbox / "error" / "lis.hl7").read_bytes() == data  # the file itself, kept whole
    report = json.loads((inbox / "error" / "lis.hl7.error.json").read_text(encoding="utf-8"))
    first_out, second_out = report["messages"]
    assert first_out["status"].startswith("processed")
    assert second_out["status"] == "quarantined"
    assert any(i.get("location") for i in second_out["issues"])
    rows = _messages(session_factory)
    assert rows["lis.hl7 [message 1 of 2]"][:2] == ("processed", first)
    assert rows["lis.hl7 [message 2 of 2]"][:2] == ("quarantined", second)


def test_a_file_drop_batch_of_good_messages_goes_to_done_and_a_second_drop_stores_nothing_new(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    one = GBK_OUL.read_bytes().rstrip(b"\r")
    two = one.replace(b"|BH202612030388|", b"|BH202612030391|", 1)
    batch = b"FHS|^~\\&|BHLIS\nBHS|^~\\&|BHLIS\n" + one + b"\n" + two + b"\nBTS|2\nFTS|1\n"
    inbox = tmp_path / "inbox"
    facility, source = example_translator().consortium.source(SOURCE)  # type: ignore[misc]
    connector = {"kind": "file", "path": str(inbox), "min_age_seconds": 0}
    pipeline = example_pipeline(session_factory)
    inbox.mkdir()
    for name in ("batch.hl7", "again.hl7"):
        (inbox / name).write_bytes(batch)
        drop = build_source(facility, source.model_copy(update={"connector": connector}))
        assert isinstance(drop, FileSource)
        try:
            summary = poll_once(drop, pipeline)
        finally:
            drop.close()
        assert (summary.read, summary.quarantined) == (2, 0), str(summary)
        assert (inbox / "done" / name).read_bytes() == batch
    assert summary.duplicates == 2  # the same messages again: recognised, not stored twice
    rows = _messages(session_factory)
    assert sorted(raw for _, raw, _ in rows.values()) == sorted([one, two])
    assert not list((inbox / "error").iterdir())
