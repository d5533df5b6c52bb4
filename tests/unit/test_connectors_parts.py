"""Connector parts without a peer: MLLP framing, ACKs, Retry-After, what is sent, secrets."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path

import pytest

from adapter.connectors.auth import BearerAuth, resolve_secret
from adapter.connectors.hl7_ack import build_ack, header_of, read_ack
from adapter.connectors.http import error_for_status, retry_after
from adapter.connectors.mllp_framing import END, START, FrameReader, FrameTooLarge
from adapter.errors import (
    ConfigError,
    FatalDeliveryError,
    Issue,
    RetriableDeliveryError,
)
from adapter.hl7v2 import parse_hl7v2
from adapter.outbound.bundle import outgoing
from adapter.outbound.fhir_rest import _entry_status
from adapter.outbound.mllp import normalise_for_sending, rewrite_header
from adapter.oversize import Oversize

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru"


# -- MLLP framing -----------------------------------------------------------------------------
def test_frames_split_over_reads_and_garbage_between_them() -> None:
    reader = FrameReader(1000)
    assert reader.feed(b"noise" + START + b"MSH|one") == []
    assert reader.feed(b"\r" + END + b"junk" + START + b"MSH|two\r" + END + START) == [
        b"MSH|one\r",
        b"MSH|two\r",
    ]
    assert reader.pending
    assert reader.feed(b"MSH|three" + b"\x1c") == []  # the end block is split
    assert reader.feed(b"\r") == [b"MSH|three"]


def test_a_frame_over_the_limit_is_refused() -> None:
    reader = FrameReader(10)
    with pytest.raises(FrameTooLarge):
        reader.feed(START + b"x" * 20)


def test_an_oversize_frame_is_counted_to_its_end_and_framing_recovers() -> None:
    reader = FrameReader(10, keep=4)
    assert reader.feed(START + b"MSH|ok" + END + START + b"0123456789ABC") == [b"MSH|ok"]
    assert reader.feed(b"x" * 1000) == []  # discarded while counted, not held
    assert len(reader._buffer) == 0
    assert reader.feed(b"yy\x1c") == []  # the end block split over two reads
    assert reader.feed(b"\r" + START + b"MSH|next" + END) == [
        Oversize(b"0123", 13 + 1000 + 2),
        b"MSH|next",
    ]
    # a whole oversize frame in one read
    assert reader.feed(START + b"z" * 11 + END + START + b"a" + END) == [
        Oversize(b"zzzz", 11),
        b"a",
    ]
    assert not reader.pending


def test_stored_messages_are_sent_with_cr_segments_and_no_framing() -> None:
    assert normalise_for_sending(b"\x0bMSH|a\nPID|b\r\n\x1c\r") == b"MSH|a\rPID|b\r"
    with pytest.raises(FatalDeliveryError):
        normalise_for_sending("MSH|a\r".encode("utf-16"))


def test_rewrite_header_escapes_and_keeps_other_bytes() -> None:
    raw = (ORU / "county-lis" / "cbc-gb18030.hl7").read_bytes()
    body = normalise_for_sending(raw)
    rebuilt = rewrite_header(body, {5: "县平台", 6: "A|B"})
    header = rebuilt.split(b"\r", 1)[0].split(b"|")
    assert header[4] == "县平台".encode("gb18030")
    assert header[5] == b"A\\F\\B"
    assert rebuilt.split(b"\r", 1)[1] == body.split(b"\r", 1)[1]
    assert parse_hl7v2(rebuilt).msh.get(6) == "A|B"


# -- ACKs -------------------------------------------------------------------------------------
def test_ack_in_the_message_charset_names_the_message() -> None:
    raw = (ORU / "county-lis" / "cbc-gb18030.hl7").read_bytes()
    message = parse_hl7v2(raw)
    ack = build_ack(
        header_of(raw, message),
        "AE",
        [
            Issue("error", "code-invalid", "检验项目代码未知", location="OBX[2]-3"),
            Issue("warning", "informational", "not an error"),
        ],
    )
    text = ack.decode("gb18030")
    segments = text.rstrip("\r").split("\r")
    assert [s[:3] for s in segments] == ["MSH", "MSA", "ERR"]  # warnings are no ERR
    assert segments[1] == f"MSA|AE|{message.control_id()}|检验项目代码未知"
    assert segments[2].split("|")[2:4] == ["OBX^2^3", "103^Table value not found^HL70357"]
    read = read_ack(ack)
    assert (read.code, read.control_id, read.accepted) == ("AE", message.control_id(), False)
    assert read.issues[0].location == "OBX[2]-3"
    assert read.outcome()["issue"][0]["diagnostics"] == "检验项目代码未知"


def test_ack_for_bytes_that_do_not_parse() -> None:
    header = header_of(b"MSH|^~\\&|LIS|HOSP|YGT|PT|20260101||ORU^R01|C123|P|2.4\rZZZ bad")
    assert (header.control_id, header.trigger, header.sending_application) == ("C123", "R01", "LIS")
    ack = read_ack(build_ack(header, "AA"))
    assert (ack.code, ack.control_id) == ("AA", "C123")
    nothing = header_of(b"\x00garbage")
    assert read_ack(build_ack(nothing, "AE", [Issue("error", "structure", "no MSH")])).code == "AE"


# -- HTTP answers -----------------------------------------------------------------------------
def test_retry_after_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after("-3") == 0.0
    assert retry_after(None) is None and retry_after("soon") is None
    now = time.time()
    assert 59 <= retry_after(formatdate(now + 60, usegmt=True), now=now) <= 60
    assert retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "retriable"),
    [
        (400, False),
        (404, False),
        (409, False),
        (422, False),
        (401, True),
        (403, True),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
    ],
)
def test_which_statuses_are_worth_another_try(status: int, retriable: bool) -> None:
    error = error_for_status(status, what="PUT x")
    expected = RetriableDeliveryError if retriable else FatalDeliveryError
    assert type(error) is expected and error.status == status


def test_what_is_sent_leaves_the_server_meta_out() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "4", "lastUpdated": "2026-01-01T00:00:00Z", "tag": [{"code": "x"}]},
    }
    assert outgoing(resource) == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"tag": [{"code": "x"}]},
    }
    assert resource["meta"]["versionId"] == "4"  # the stored body is not changed
    bare = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}}
    assert outgoing(bare) == {"resourceType": "Patient", "id": "p1"}
    assert _entry_status("201 Created") == 201 and _entry_status("200") == 200
    assert _entry_status(None) is None and _entry_status("OK") is None


# -- secrets ----------------------------------------------------------------------------------
def test_secrets_literal_environment_or_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("T_TOKEN", "from-env")
    (tmp_path / "token").write_text("from-file\n")
    where = "destinations.d.settings.auth"
    assert resolve_secret(BearerAuth(type="bearer", token="lit"), "token", where=where) == "lit"
    assert (
        resolve_secret(BearerAuth(type="bearer", token_env="T_TOKEN"), "token", where=where)
        == "from-env"
    )
    assert (
        resolve_secret(
            BearerAuth(type="bearer", token_file=str(tmp_path / "token")), "token", where=where
        )
        == "from-file"
    )
    with pytest.raises(ConfigError) as caught:
        resolve_secret(
            BearerAuth(type="bearer", token="a", token_env="T_TOKEN"), "token", where=where
        )
    assert caught.value.key == f"{where}.token_env"
    with pytest.raises(ConfigError) as caught:
        resolve_secret(BearerAuth(type="bearer"), "token", where=where)
    assert caught.value.key == f"{where}.token"
    with pytest.raises(ConfigError) as caught:
        resolve_secret(
            BearerAuth(type="bearer", token_file=str(tmp_path / "none")), "token", where=where
        )
    assert caught.value.key == f"{where}.token_file"


def test_frame_reader_a_new_start_block_ends_a_cut_frame() -> None:
    from adapter.connectors.mllp_framing import END, START, CutFrame, FrameReader

    reader = FrameReader(1000)
    frames = reader.feed(START + b"MSH|cut off" + START + b"MSH|whole" + END)
    assert frames == [CutFrame(b"MSH|cut off"), b"MSH|whole"]
    # the start block of the next message arrives in a later read
    reader = FrameReader(1000)
    assert reader.feed(START + b"MSH|half") == []
    assert reader.feed(START + b"MSH|next" + END) == [CutFrame(b"MSH|half"), b"MSH|next"]
