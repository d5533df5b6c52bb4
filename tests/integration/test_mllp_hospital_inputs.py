"""The messages Chinese hospital systems send, through the adapter's real MLLP listener on a
loopback socket with a real database: several messages in one connection and one write
(ADT, an order, OUL results), GBK bytes without MSH-18, a message cut off mid-frame, and the
golden MLLP captures (fixtures/hl7v2/mllp) sent as captured."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapter.connectors.hl7_ack import read_ack
from adapter.connectors.mllp_framing import END, START, FrameReader
from adapter.inbound import build_listener
from adapter.inbound.mllp import MllpListener
from adapter.mapping.golden import golden_path, split_capture
from adapter.store.models import InboundMessage
from adapter.store.resources import read_resource
from tests.integration.connector_helpers import example_pipeline as _pipeline

ROOT = Path(__file__).resolve().parents[2]
V2 = ROOT / "fixtures" / "hl7v2"


def _listen(factory: sessionmaker[Session], source_id: str) -> tuple[int, MllpListener]:
    pipeline = _pipeline(factory)
    facility, source = pipeline.consortium.source(source_id)  # type: ignore[misc]
    source = source.model_copy(update={"connector": {"kind": "mllp", "port": 0}})
    listener = build_listener(facility, source)
    assert isinstance(listener, MllpListener)
    return listener.start(pipeline), listener


@pytest.fixture
def his(session_factory: sessionmaker[Session]) -> Iterator[int]:
    port, listener = _listen(session_factory, "county-his")
    try:
        yield port
    finally:
        listener.stop()


def _read_answers(sock: socket.socket, count: int) -> list[bytes]:
    reader, answers = FrameReader(1_000_000), []
    while len(answers) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answers.extend(f for f in reader.feed(chunk) if isinstance(f, bytes))
    return answers


def _stored(factory: sessionmaker[Session]) -> list[Any]:
    with factory() as session:
        return list(
            session.execute(
                select(
                    InboundMessage.status,
                    InboundMessage.raw,
                    InboundMessage.encoding,
                    InboundMessage.resources,
                    InboundMessage.issues,
                ).order_by(InboundMessage.received_at)
            ).all()
        )


def test_several_messages_in_one_write_are_each_stored_and_acknowledged(
    his: int, session_factory: sessionmaker[Session]
) -> None:
    messages = [
        (V2 / "adt" / "county-his" / "a01-admit.hl7").read_bytes(),
        (V2 / "orders" / "county-his" / "orm-lab-new.hl7").read_bytes(),
        (V2 / "adt" / "county-his" / "a03-discharge-gbk.hl7").read_bytes(),  # GBK
    ]
    with socket.create_connection(("127.0.0.1", his), timeout=20) as sock:
        sock.sendall(b"".join(START + m + END for m in messages))  # one write, three frames
        answers = _read_answers(sock, 3)
    acks = [read_ack(a) for a in answers]
    assert [(a.code, a.control_id) for a in acks] == [
        ("AA", "QSHIS2612010088A01"),
        ("AA", "QSHIS2612010088O1"),
        ("AA", "QSHIS2612010088A03"),
    ]
    stored = _stored(session_factory)
    assert [m.status for m in stored] == ["processed"] * 3
    assert [m.raw for m in stored] == messages  # kept byte for byte, GBK included
    kinds = [sorted({r.split("/")[0] for r in m.resources}) for m in stored]
    assert kinds[0] == ["Encounter", "Organization", "Patient"]
    assert "ServiceRequest" in kinds[1]


def test_gbk_without_msh18_through_the_listener(session_factory: sessionmaker[Session]) -> None:
    port, listener = _listen(session_factory, "county-lis-xinda")
    raw = (V2 / "oul" / "county-lis-xinda" / "emergency-two-orders-gbk.hl7").read_bytes()
    assert b"GBK" not in raw.split(b"\r")[0]  # no MSH-18
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(START + raw + END)
            [answer] = _read_answers(sock, 1)
    finally:
        listener.stop()
    assert read_ack(answer).code == "AA"
    [stored] = _stored(session_factory)
    assert stored.encoding == "gb18030" and stored.status == "processed"
    assert sum(r.startswith("Observation/") for r in stored.resources) == 4


def test_a_message_cut_off_mid_frame_costs_nothing_of_the_next(
    his: int, session_factory: sessionmaker[Session]
) -> None:
    """A sender that stops mid-message and starts again on the same connection: the cut frame
    never ends, a new start block begins the next one. The cut bytes are kept as received,
    quarantined untranslated and answered AE; the next message is stored and answered AA on
    its own, with its own control id."""
    whole = (V2 / "adt" / "county-his" / "a04-register-gb18030.hl7").read_bytes()
    cut = (V2 / "orders" / "county-his" / "orm-lab-new.hl7").read_bytes()[:150]
    with socket.create_connection(("127.0.0.1", his), timeout=20) as sock:
        sock.sendall(START + cut)
        sock.sendall(START + whole + END)
        answers = _read_answers(sock, 2)
    acks = [read_ack(a) for a in answers]
    assert [(a.code, a.control_id) for a in acks] == [
        ("AE", "QSHIS2612010088O1"),
        ("AA", "QSHIS2612030411A04"),
    ]
    assert "cut off after 150 bytes" in acks[0].issues[0].diagnostics
    stored = _stored(session_factory)
    assert [(m.status, m.raw) for m in stored] == [("quarantined", cut), ("processed", whole)]
    assert stored[0].resources == []  # the cut bytes were not translated


def test_a_connection_closed_mid_frame_stores_nothing_and_the_listener_goes_on(
    his: int, session_factory: sessionmaker[Session]
) -> None:
    cut = (V2 / "adt" / "county-his" / "a01-admit.hl7").read_bytes()[:200]
    with socket.create_connection(("127.0.0.1", his), timeout=20) as sock:
        sock.sendall(START + cut)  # and the sender goes away
    raw = (V2 / "adt" / "county-his" / "a11-cancel-visit.hl7").read_bytes()
    with socket.create_connection(("127.0.0.1", his), timeout=20) as sock:
        sock.sendall(START + raw + END)
        [answer] = _read_answers(sock, 1)
    assert read_ack(answer).code == "AA"
    assert [m.raw for m in _stored(session_factory)] == [raw]


CAPTURES = V2 / "mllp"
CAPTURE_CASES: list[dict[str, Any]] = yaml.safe_load(
    (CAPTURES / "cases.yaml").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", CAPTURE_CASES, ids=[c["file"] for c in CAPTURE_CASES])
def test_a_capture_through_the_listener_gives_its_golden_output(
    session_factory: sessionmaker[Session], case: dict[str, Any]
) -> None:
    """The capture's bytes as captured, in one write: one ACK per message with its control
    id, each message stored byte for byte with the resources and issues of the golden file
    (the same output as ``adapter mappings test``), the resources stored as made."""
    raw = (CAPTURES / case["file"]).read_bytes()
    golden = json.loads(golden_path(CAPTURES, case["file"]).read_text(encoding="utf-8"))
    expected = golden["messages"]
    port, listener = _listen(session_factory, case["source"])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(raw)
            answers = _read_answers(sock, len(expected))
    finally:
        listener.stop()
    acks = [read_ack(a) for a in answers]
    assert [(a.code, a.control_id) for a in acks] == [
        ("AA", m["control_id"]) for m in case["messages"]
    ]
    stored = _stored(session_factory)
    assert [m.raw for m in stored] == split_capture(raw, case["capture"])
    for row, made in zip(stored, expected, strict=True):
        warned = any(i["severity"] == "warning" for i in made["issues"])
        assert row.status == ("processed-with-warnings" if warned else "processed")
        assert row.issues == made["issues"]
        assert sorted(row.resources) == sorted(
            f"{r['resourceType']}/{r['id']}" for r in made["resources"]
        )
    with session_factory() as session:
        for made in expected:
            for resource in made["resources"]:
                kept = read_resource(session, resource["resourceType"], resource["id"])
                assert kept is not None
                kept.pop("meta", None)
                assert kept == {k: v for k, v in resource.items() if k != "meta"}
