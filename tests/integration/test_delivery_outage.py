"""A destination down for a while, then back; and answers lost after the server stored the
Bundle. Real fixture messages go through the pipeline into the test database (SQLite or
PostgreSQL) and out through the worker to an independent FHIR server (Medplum, in memory),
reached through a loopback gate the test switches: closed (connections refused), failing
(503), forwarding, or forwarding and then hanging up before the answer.

Everything is counted on the server: each resource by id and by business identifier, with
the body it holds compared to the adapter's current version. Time is the worker's clock,
moved by the test: the retry waits and the breaker's cool-downs pass without sleeping.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import Consortium, load_consortium
from adapter.delivery.breaker import BreakerConfig
from adapter.delivery.service import build_worker
from adapter.delivery.worker import DeliveryWorker, WorkerOptions
from adapter.hl7v2 import parse_hl7v2
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import read_resource
from adapter.store.models import DeliveryAttempt, DeliveryDestination, Outbox
from tests.integration.delivery_support import T0, Clock
from tests.peers.fixtures import Medplum

ROOT = Path(__file__).resolve().parents[2]
ORU = ROOT / "fixtures" / "hl7v2" / "oru"
DEST = "county-hospital-fhir"  # the township centres' results go to the county hospital
SOURCES = ("shiqiao-lis", "liuhe-lis")
RETRY = {
    "max_attempts": 50,
    "max_age_seconds": 86400,
    "initial_backoff_seconds": 5,
    "max_backoff_seconds": 120,
}


# -- the gate between the worker and the FHIR server ---------------------------------------------


class Gate:
    """A loopback HTTP front for the FHIR server: ``mode`` is ``forward``, ``fail`` (503
    without asking the server) or ``lose`` (forward, then hang up before answering: the
    server has stored the Bundle, the client never hears so); ``down()`` stops listening."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")  # http://127.0.0.1:N (the server's root)
        self.port = 0
        self.mode = "forward"
        self.lose_next = 0  # in forward mode: lose the answers of this many requests
        self.seen = Counter[str]()  # requests that reached the gate, by what it did
        self.lost_entries = 0  # resources in the requests whose answers were lost
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._client = httpx.Client(timeout=30)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def up(self) -> Gate:
        if self._server is None:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), _gate_handler(self))
            server.daemon_threads = True
            self.port = server.server_address[1]
            self._server = server
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()
        self._client.close()

    def action(self) -> str:
        with self._lock:
            action = self.mode
            if action == "forward" and self.lose_next > 0:
                self.lose_next -= 1
                action = "lose"
            self.seen[action] += 1
            return action


def _gate_handler(gate: Gate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            action = gate.action()
            if action == "fail":
                self._answer(
                    503,
                    b'{"resourceType":"OperationOutcome","issue":[{"severity":'
                    b'"error","code":"transient","diagnostics":"down"}]}',
                    "application/fhir+json",
                )
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("content-type", "accept", "prefer")
            }
            answer = gate._client.request(
                self.command, gate.target + self.path, content=body, headers=headers
            )
            if action == "lose":  # stored at the server; the client hears nothing
                with gate._lock:
                    gate.lost_entries += (
                        len(json.loads(body).get("entry") or []) if self.command == "POST" else 1
                    )
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._answer(
                answer.status_code,
                answer.content,
                answer.headers.get("content-type", "application/fhir+json"),
            )

        def _answer(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = _handle

    return Handler


@pytest.fixture
def gate(medplum: Medplum) -> Iterator[Gate]:
    opened = Gate(medplum.root).up()
    try:
        yield opened
    finally:
        opened.close()


# -- the adapter side ----------------------------------------------------------------------------


@dataclass
class Adapter:
    consortium: Consortium
    factory: sessionmaker[Session]
    settings: Settings

    def ingest_fixtures(self) -> int:
        pipeline = make_pipeline(self.settings, self.consortium, self.factory)
        count = 0
        for source in SOURCES:
            for path in sorted((ORU / source).glob("*.hl7")):
                result = pipeline.ingest(path.read_bytes(), Receipt(source, "cli", received_at=T0))
                assert result.accepted and not result.duplicate, result.as_dict()
                count += 1
        return count

    def ingest_correction(self) -> None:
        """cbc-18-st again, as a new message with its first result changed: a new version
        of that Observation, queued behind the first one."""
        message = parse_hl7v2((ORU / "shiqiao-lis" / "cbc-18-st.hl7").read_bytes())
        lines = message.text.split("\r")
        fs = lines[0][3]
        for n, line in enumerate(lines):
            fields = line.split(fs)
            if fields[0] == "MSH":
                fields[9] += "-C"
            elif fields[0] == "OBX":
                fields[5] = str(float(fields[5]) + 1.5)
                lines[n] = fs.join(fields)
                break
            lines[n] = fs.join(fields)
        pipeline = make_pipeline(self.settings, self.consortium, self.factory)
        result = pipeline.ingest(
            "\r".join(lines).encode(message.charset),
            Receipt("shiqiao-lis", "cli", received_at=T0 + timedelta(seconds=90)),
        )
        assert result.accepted and not result.duplicate, result.as_dict()

    def worker(self, clock: Clock, failure_threshold: int = 5) -> DeliveryWorker:
        built = build_worker(
            self.consortium,
            self.factory,
            only=[DEST],
            worker_id="w1",
            options=WorkerOptions(
                batch_size=20,
                breaker=BreakerConfig(failure_threshold=failure_threshold, cool_down_seconds=30),
            ),
        )
        built.clock = clock
        return built

    def states(self) -> Counter[str]:
        with self.factory() as session:
            return Counter(
                dict(
                    session.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all()
                )
            )

    def breaker(self) -> DeliveryDestination:
        with self.factory() as session:
            found = session.get(DeliveryDestination, DEST)
            assert found is not None
            return found

    def expected(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every resource queued for the destination, with its current stored body."""
        with self.factory() as session:
            keys = session.execute(
                select(Outbox.resource_type, Outbox.resource_id)
                .select_from(Outbox)  # both read through resource (decision 0084)
                .where(Outbox.destination == DEST)
                .distinct()
            ).all()
            out = {}
            for resource_type, resource_id in keys:
                body = read_resource(session, resource_type, resource_id)
                assert body is not None
                out[(resource_type, resource_id)] = body
            return out


@pytest.fixture
def adapter(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], gate: Gate
) -> Adapter:
    """The example consortium with the county hospital's FHIR destination switched on and
    pointed at the gate (fixtures/consortium.yaml itself is not touched)."""
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    [destination] = [
        d for f in data["facilities"] for d in f.get("destinations") or [] if d["id"] == DEST
    ]
    destination["enabled"] = True
    destination["settings"].update(
        base_url=gate.base_url, timeout_seconds=5, connect_timeout_seconds=1
    )
    destination["retry"] = RETRY
    path = tmp_path / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = Settings(config=path, database_url=database_url)
    return Adapter(load_consortium(path), session_factory, settings)


# -- counting at the server ----------------------------------------------------------------------


def _without_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


@dataclass
class Count:
    sent: int  # resource entries (PUTs) that reached the server
    delivered: int  # resources the server holds, exactly as the adapter's current version
    duplicated: int  # extra copies: more resources of a type, or of one identifier, than ours
    lost: int  # ours the server does not hold (or holds at another version)
    stale: list[str]

    def line(self, what: str) -> str:
        return (
            f"{what}: sent {self.sent}, delivered {self.delivered}, "
            f"duplicated {self.duplicated}, lost {self.lost}"
        )


def count_on_server(medplum: Medplum, expected: dict[tuple[str, str], dict[str, Any]]) -> Count:
    sent = sum(
        len(r["entries"] or []) if r["method"] == "POST" else 1
        for r in medplum.requests()
        if r["method"] in ("POST", "PUT")
    )
    delivered, stale = 0, []
    for (resource_type, resource_id), body in expected.items():
        held = medplum.get(f"{resource_type}/{resource_id}")
        if held.get("resourceType") != resource_type:
            continue
        if _without_meta(held) == _without_meta(body):
            delivered += 1
        else:
            stale.append(f"{resource_type}/{resource_id}")
    duplicated = 0
    ours = Counter(t for t, _ in expected)
    for resource_type, n in ours.items():
        duplicated += max(0, medplum.count(resource_type) - n)
    # by business identifier: as many on the server as the adapter has (normally one)
    by_identifier = Counter[tuple[str, str, str]]()
    for (resource_type, _id), body in expected.items():
        for identifier in body.get("identifier") or []:
            if identifier.get("system") and identifier.get("value"):
                by_identifier[(resource_type, identifier["system"], identifier["value"])] += 1
    for (resource_type, system, value), n in by_identifier.items():
        held = medplum.count(resource_type, "identifier=" + quote(f"{system}|{value}", safe=""))
        duplicated += max(0, held - n)
    return Count(sent, delivered, duplicated, len(expected) - delivered, stale)


def run_until_drained(
    worker: DeliveryWorker, adapter: Adapter, clock: Clock, step: float = 10.0, limit: int = 300
) -> int:
    """Worker rounds, the clock moving ``step`` seconds between them, until nothing is left
    to deliver; the number of rounds."""
    for rounds in range(1, limit + 1):
        worker.drain()
        left = adapter.states()
        if not left["pending"] and not left["in-flight"]:
            return rounds
        clock.advance(step)
    raise AssertionError(f"not drained after {limit} rounds: {adapter.states()}")


# -- the scenarios -------------------------------------------------------------------------------


def test_destination_down_for_a_while_then_back_delivers_everything_once(
    adapter: Adapter, gate: Gate, medplum: Medplum
) -> None:
    messages = adapter.ingest_fixtures()
    gate.down()  # the county hospital's server is unreachable ...
    clock = Clock()
    # one transaction per batch, one failure per request: the third opens the breaker
    worker = adapter.worker(clock, failure_threshold=3)
    admissions = Counter[str]()
    try:
        for n in range(40):  # ... for 40 rounds, 20 s apart: more than 13 minutes
            if n == 3:
                adapter.ingest_correction()  # new data keeps arriving meanwhile
            if n == 20:  # half way: it listens again but answers 503
                gate.mode = "fail"
                gate.up()
            admissions[worker.process(DEST).admission] += 1
            clock.advance(20)

        states = adapter.states()
        assert states["dead"] == 0 and states["delivered"] == 0 and states["in-flight"] == 0
        breaker = adapter.breaker()
        assert breaker.breaker_state == "open" and breaker.opened_count >= 3
        assert admissions["wait"] > admissions["probe"] >= 3  # paused, probing now and then
        assert medplum.requests() == [] and gate.seen["fail"] >= 1
        with adapter.factory() as session:
            tried = session.scalars(select(Outbox).where(Outbox.attempts > 0)).all()
            failures = session.scalar(
                select(func.count())
                .select_from(DeliveryAttempt)
                .where(DeliveryAttempt.outcome == "retry")
            )
        assert tried and failures == sum(r.attempts for r in tried)
        assert max(r.attempts for r in tried) >= 4
        for row in tried:  # rescheduled with the exponential backoff, jitter included
            base = min(
                RETRY["initial_backoff_seconds"] * 2 ** (row.attempts - 1),
                RETRY["max_backoff_seconds"],
            )
            wait = (row.next_attempt_at - row.last_attempt_at).total_seconds()
            assert (
                base
                <= wait
                <= min(base + RETRY["initial_backoff_seconds"], RETRY["max_backoff_seconds"])
            ), (row.attempts, wait)

        gate.mode = "forward"  # back
        rounds = run_until_drained(worker, adapter, clock)
    finally:
        worker.close()

    states = adapter.states()
    assert states == {"delivered": sum(states.values())}
    expected = adapter.expected()
    count = count_on_server(medplum, expected)
    assert (count.lost, count.duplicated, count.stale) == (0, 0, [])
    assert count.delivered == count.sent == len(expected)  # each sent once, after the outage
    # the corrected result went as its second version only (both rows delivered by one PUT)
    [corrected] = [b for b in expected.values() if b["meta"]["versionId"] != "1"]
    assert corrected["resourceType"] == "Observation" and corrected["meta"]["versionId"] == "2"
    print(
        f"\n{messages} messages + 1 correction, {len(expected)} resources, "
        f"{sum(states.values())} outbox rows; down {admissions['send']} batches + "
        f"{admissions['probe']} probes failed, {admissions['wait']} rounds paused by the "
        f"breaker, {gate.seen['fail']} answered 503; back: drained in {rounds} rounds\n"
        + count.line("counted on the server")
    )


def test_answers_lost_after_the_server_stored_the_bundle_are_resent_as_updates(
    adapter: Adapter, gate: Gate, medplum: Medplum
) -> None:
    adapter.ingest_fixtures()
    gate.lose_next = 2  # the first two transactions are stored, their answers cut off
    clock = Clock()
    worker = adapter.worker(clock)
    try:
        first = worker.process(DEST)
        assert first.claimed and first.tally.retried == first.claimed
        assert adapter.states()["delivered"] == 0
        stored = [r for r in medplum.requests() if r["method"] == "POST"]
        assert len(stored) == 1 and len(stored[0]["entries"]) == first.claimed
        rounds = run_until_drained(worker, adapter, clock)
    finally:
        worker.close()

    assert gate.seen["lose"] == 2
    entries = Counter(e for r in medplum.requests() if r["method"] == "POST" for e in r["entries"])
    resent = [e for e, n in entries.items() if n > 1]
    # what was lost went again, and nothing else did
    assert len(resent) >= first.claimed
    assert sum(n - 1 for n in entries.values()) == gate.lost_entries
    expected = adapter.expected()
    count = count_on_server(medplum, expected)
    assert (count.lost, count.duplicated, count.stale) == (0, 0, [])
    assert count.delivered == len(expected)
    # each resent resource was updated in place: one id, more than one version there
    for entry in resent:
        history = medplum.get(entry.removeprefix("PUT ") + "/_history")
        assert history["resourceType"] == "Bundle" and len(history["entry"]) >= 2
    states = adapter.states()
    assert states == {"delivered": sum(states.values())}
    print(
        f"\nanswers lost after storing: {gate.seen['lose']} requests, "
        f"{gate.lost_entries} resources; {len(resent)} resources sent again, drained in "
        f"{rounds} rounds\n" + count.line("counted on the server")
    )
