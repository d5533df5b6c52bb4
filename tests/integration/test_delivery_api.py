"""Deliveries over HTTP: listing, one delivery with its attempts, replay, /health, /metrics,
and ``adapter serve``'s in-process worker (ADAPTER_DELIVER_IN_PROCESS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from adapter.api.app import create_app
from adapter.delivery.breaker import BreakerConfig
from adapter.delivery.retention import prune
from adapter.errors import ConfigError
from adapter.settings import Settings
from tests.integration.delivery_receiver import Receiver, outcome
from tests.integration.delivery_support import (
    DEST,
    Clock,
    observation,
    queue,
    rows,
    worker,
    write_consortium,
)


@pytest.fixture
def delivery_app(database_url: str, tmp_path: Path, receiver: Receiver) -> Iterator[FastAPI]:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    app = create_app(Settings(database_url=database_url, config=config))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def api(delivery_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(delivery_app) as client:
        yield client


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_list_filter_and_show_a_dead_letter_with_its_attempts(
    api: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    now = _now()
    ids = queue(
        session_factory, [observation("good", "p1", "v1"), observation("bad", "p2", "v1")], now=now
    )
    refusal = outcome("required", "Observation.code: minimum required = 1")
    receiver.rule = lambda t, i, body, n: (400, {}, refusal) if i == "bad" else None
    worker(session_factory, receiver.base_url, clock=Clock(now)).drain()

    listed = api.get("/deliveries").json()
    assert listed["total"] == 2 and [d["id"] for d in listed["items"]] == ids[::-1]
    dead = api.get("/deliveries", params={"state": "dead", "destination": DEST}).json()
    assert dead["total"] == 1
    [item] = dead["items"]
    assert (item["resource"], item["state"], item["last_status"]) == (
        "Observation/bad",
        "dead",
        "400",
    )
    assert api.get("/deliveries", params={"destination": "other"}).json()["total"] == 0
    assert api.get("/deliveries", params={"state": "lost"}).status_code == 400

    shown = api.get(f"/deliveries/{ids[1]}").json()
    [attempt] = shown["attempt_log"]
    assert (attempt["outcome"], attempt["status"], attempt["destination"]) == ("dead", "400", DEST)
    assert attempt["operation_outcome"] == refusal
    assert attempt["duration_ms"] > 0 and attempt["worker"] == "w1"
    assert attempt["attempted_at"] == now.isoformat()
    assert api.get("/deliveries/999999").status_code == 404


def test_replay_over_http_sends_the_current_version(
    api: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    now = _now()
    [oid] = queue(session_factory, [observation("o1", "p1", "v1")], now=now)
    receiver.rule = lambda t, i, body, n: (422, {}, None) if n == 1 else None
    w = worker(session_factory, receiver.base_url, clock=Clock(now))
    w.drain()
    assert rows(session_factory)[oid].state == "dead"
    # the resource changes again; the new version's own row is delivered, and the dead
    # row, replayed, sends the current version too (never the old one)
    queue(session_factory, [observation("o1", "p1", "v2")], now=now)
    assert api.post(f"/deliveries/{oid}/replay").status_code == 200
    assert api.post(f"/deliveries/{oid}/replay").status_code == 409  # already queued
    assert api.post("/deliveries/999999/replay").status_code == 404
    w.clock = Clock(datetime.now(UTC) + timedelta(seconds=1))
    w.drain()
    assert [r.mark for r in receiver.requests] == ["v1", "v2"]
    replayed = api.get(f"/deliveries/{oid}").json()
    assert (replayed["state"], replayed["sent_version_id"]) == ("delivered", 2)
    assert [a["outcome"] for a in replayed["attempt_log"]] == ["dead", "delivered"]


def test_replay_a_destination_since_a_time(
    api: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    early, late = _now() - timedelta(hours=2), _now() - timedelta(minutes=5)
    [first] = queue(session_factory, [observation("o1", "p1", "v1")], now=early)
    receiver.rule = lambda t, i, body, n: (404, {}, None)
    worker(session_factory, receiver.base_url, clock=Clock(early)).drain()
    [second] = queue(session_factory, [observation("o2", "p2", "v1")], now=late)
    worker(session_factory, receiver.base_url, clock=Clock(late)).drain()
    assert {rows(session_factory)[i].state for i in (first, second)} == {"dead"}

    since = (late - timedelta(minutes=1)).isoformat()
    answer = api.post("/deliveries/replay", params={"destination": DEST, "since": since})
    assert answer.json() == {"destination": DEST, "replayed": 1}
    state = rows(session_factory)
    assert (state[first].state, state[second].state) == ("dead", "pending")
    assert api.post("/deliveries/replay", params={"destination": DEST}).json()["replayed"] == 1
    assert (
        api.post("/deliveries/replay", params={"destination": DEST, "state": "pending"}).status_code
        == 400
    )


def test_health_reports_each_destination_and_degrades_when_its_breaker_opens(
    api: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    now = _now()
    queue(session_factory, [observation("o1", "p1", "v1")], now=now)
    w = worker(
        session_factory,
        receiver.base_url,
        clock=Clock(now),
        breaker=BreakerConfig(failure_threshold=2, cool_down_seconds=600),
    )
    w.drain()
    body = api.get("/health").json()
    assert body["status"] == "ok"
    destination = body["checks"]["delivery"]["destinations"][DEST]
    assert destination["status"] == "ok" and destination["breaker"] == "closed"
    assert (
        destination["queue_depth"],
        destination["dead_letters"],
        destination["attempts"],
        destination["delivered"],
    ) == (0, 0, 1, 1)
    assert destination["last_success"] == now.isoformat()

    receiver.rule = lambda t, i, body, n: (503, {}, None)
    queue(session_factory, [observation(f"x{n}", f"q{n}", "v1") for n in range(3)], now=now)
    w.drain()
    response = api.get("/health")
    assert response.status_code == 200  # still taking messages
    body = response.json()
    destination = body["checks"]["delivery"]["destinations"][DEST]
    assert body["status"] == "degraded" and destination["status"] == "degraded"
    assert destination["breaker"] == "open" and destination["queue_depth"] == 3
    assert "circuit breaker open" in destination["problems"][0]


def test_health_degrades_when_a_destination_is_far_behind(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    queue(session_factory, [observation("o1", "p1", "v1")], now=_now() - timedelta(hours=1))
    body = api.get("/health").json()
    destination = body["checks"]["delivery"]["destinations"][DEST]
    assert body["status"] == "degraded"
    assert destination["oldest_pending_age_seconds"] >= 3600
    assert destination["problems"][0].startswith("behind")


def test_metrics_in_prometheus_text_format(
    api: TestClient, session_factory: sessionmaker[Session], receiver: Receiver
) -> None:
    now = _now()
    queue(session_factory, [observation(f"o{n}", f"p{n}", "v1") for n in range(3)], now=now)
    receiver.rule = lambda t, i, body, n: (422, {}, None) if i == "o0" else None
    worker(session_factory, receiver.base_url, clock=Clock(now)).drain()
    queue(session_factory, [observation("o9", "p9", "v1")], now=now - timedelta(seconds=30))

    response = api.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE")
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    label = f'{{destination="{DEST}"}}'
    assert samples[f"adapter_delivery_queue_depth{label}"] == 1
    assert samples[f"adapter_delivery_dead_letters{label}"] == 1
    assert samples[f"adapter_delivery_attempts_total{label}"] == 3
    assert samples[f"adapter_delivery_delivered_total{label}"] == 2
    assert samples[f"adapter_delivery_dead_letters_total{label}"] == 1
    assert samples[f"adapter_delivery_oldest_pending_age_seconds{label}"] >= 30
    assert samples[f"adapter_delivery_last_success_timestamp_seconds{label}"] == now.timestamp()
    assert samples[f'adapter_delivery_breaker_state{{destination="{DEST}",state="closed"}}'] == 1
    assert samples[f'adapter_delivery_breaker_state{{destination="{DEST}",state="open"}}'] == 0
    assert "# TYPE adapter_delivery_attempts_total counter" in response.text
    assert samples[f"adapter_delivery_pruned_total{label}"] == 0

    # the outbox retention deletes the two delivered rows: the totals stay (decision 0064)
    assert prune(session_factory, cutoff=now + timedelta(seconds=1), batch=10).rows == 2
    after = {
        name: float(value)
        for name, value in (
            line.rsplit(" ", 1) for line in api.get("/metrics").text.splitlines() if line[:1] != "#"
        )
    }
    assert after[f"adapter_delivery_pruned_total{label}"] == 2
    assert after[f"adapter_delivery_delivered_total{label}"] == 2
    assert after[f"adapter_delivery_dead_letters{label}"] == 1


def test_serve_delivers_in_process_when_asked(
    database_url: str, tmp_path: Path, receiver: Receiver, session_factory: sessionmaker[Session]
) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    app = create_app(Settings(database_url=database_url, config=config, deliver_in_process=True))
    ids = queue(session_factory, [observation(f"o{n}", "p1", "v1") for n in range(3)], now=_now())
    try:
        with TestClient(app) as client:
            assert app.state.delivery is not None
            deadline = time.monotonic() + 20
            while len(receiver.refs()) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            worker_kind = client.get("/health").json()["checks"]["delivery"]["worker"]
        assert not app.state.delivery.thread.is_alive()  # stopped with the app
    finally:
        app.state.engine.dispose()
    assert receiver.refs() == ["Observation/o0", "Observation/o1", "Observation/o2"]
    assert {rows(session_factory)[i].state for i in ids} == {"delivered"}
    assert worker_kind == "in-process"


def test_bad_destination_settings_stop_an_in_process_start(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    config = write_consortium(tmp_path / "consortium.yaml", receiver.base_url)
    config.write_text(config.read_text().replace("bundle: none", "bundel: none"))
    with pytest.raises(ConfigError, match="bundel"):
        create_app(Settings(database_url=database_url, config=config, deliver_in_process=True))
