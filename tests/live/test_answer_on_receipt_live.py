"""Answering on receipt through the real server (decision 0063): ``Prefer: respond-async``
and a source's ``answer: on-receipt`` get 202 ``received`` at once, and ``/messages/{id}``
then shows what the synchronous answer would have said; a server killed between receipt
and drain drains on restart. Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select

from adapter.store import make_engine
from adapter.store.models import InboundMessage
from tests.integration.test_long_values import long_oru
from tests.live.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
START = 120.0  # a loaded shared machine starts the server slowly
LIMIT = 20_000  # ADAPTER_MAX_MESSAGE_BYTES here: one document is made larger
ASYNC = {"Prefer": "respond-async"}


def _documents(prefix: str) -> list[tuple[str, str, bytes]]:
    """(name, source, bytes): new reports, a duplicate, garbage, an unknown source, one
    over the size limit."""
    docs = [(f"{prefix}-{n}", "std-hl7v2", long_oru(control=f"{prefix}{n:04d}")) for n in range(6)]
    docs.append((f"{prefix}-again", "std-hl7v2", docs[2][2]))
    docs.append((f"{prefix}-garbage", "std-hl7v2", b"MSH|^~\\&|broken " + prefix.encode()))
    docs.append((f"{prefix}-unknown", "nobody", long_oru(control=f"{prefix}X")))
    big = long_oru(control=f"{prefix}BIG") + b"\rNTE|1||" + b"x" * LIMIT
    docs.append((f"{prefix}-big", "std-hl7v2", big))
    return docs


def _post(
    http: httpx.Client, server: LiveServer, doc: tuple[str, str, bytes], headers: dict[str, str]
) -> httpx.Response:
    _, source, raw = doc
    return http.post(
        server.url("/ingest"),
        content=raw,
        headers={"X-Source-System": source, "Content-Type": "application/hl7-v2", **headers},
    )


def _final(http: httpx.Client, server: LiveServer, message_id: str) -> dict[str, Any]:
    """``/messages/{id}`` once no longer ``received`` (the deadline only stops a broken test
    from hanging)."""
    deadline = time.monotonic() + 120
    while True:
        shown = http.get(server.url(f"/messages/{message_id}")).json()
        if shown["status"] != "received":
            return shown
        assert time.monotonic() < deadline, f"{message_id} never drained"
        time.sleep(0.1)


def _outcome(shown: dict[str, Any]) -> tuple[Any, ...]:
    issues = tuple(sorted((i["severity"], i["code"]) for i in shown["issues"]))
    return (shown["status"], len(shown["resources"]), issues)


def test_respond_async_then_the_final_status_as_the_synchronous_answer(
    database_url: str, tmp_path: Path
) -> None:
    limit = {"ADAPTER_MAX_MESSAGE_BYTES": str(LIMIT)}
    sync_docs, async_docs = _documents("SYN"), _documents("ASY")
    with (
        LiveServer(database_url, tmp_path, env=limit, start_timeout=START) as server,
        httpx.Client(timeout=120) as http,
    ):
        stored = {d[0]: _post(http, server, d, {}) for d in sync_docs}
        received = {d[0]: _post(http, server, d, ASYNC) for d in async_docs}
        for (sname, _, _), (aname, _, _) in zip(sync_docs, async_docs, strict=True):
            now, then = received[aname], stored[sname]
            if then.status_code == 202 and not then.json()["duplicate"]:
                # kept, answered at once; the final status is read at Location
                assert now.status_code == 202, aname
                body = now.json()
                assert (body["status"], body["duplicate"]) == ("received", False)
                assert now.headers["Location"] == f"/messages/{body['message_id']}"
                assert now.headers["X-Message-Id"] == body["message_id"]
                assert now.headers["Preference-Applied"] == "respond-async"
                shown = _final(http, server, body["message_id"])
                assert _outcome(shown) == _outcome(
                    http.get(server.url(then.headers["Location"])).json()
                ), aname
            elif aname.endswith("-garbage"):  # 422 when stored; kept, then quarantined
                assert (then.status_code, now.status_code) == (422, 202)
                shown = _final(http, server, now.json()["message_id"])
                assert shown["status"] == "quarantined" and shown["issues"]
            elif aname.endswith("-again"):  # the earlier message, whatever its status now
                assert now.status_code == 202 and now.json()["duplicate"] is True
                assert now.json()["message_id"] == received["ASY-2"].json()["message_id"]
            else:  # an unknown source, a document over the limit: answered as when stored
                assert now.status_code == then.status_code, aname
                assert now.status_code in (400, 404, 413), aname
        metrics = http.get(server.url("/metrics")).text
        assert "adapter_ingest_backlog 0" in metrics
        assert "adapter_ingest_backlog_oldest_age_seconds 0" in metrics


def _on_receipt_consortium(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    for facility in data["facilities"]:
        for source in facility["sources"]:
            if source["id"] == "std-hl7v2":
                source["answer"] = "on-receipt"
    path = tmp_path / "consortium.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _received(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.status == "received")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def test_a_source_answered_on_receipt_and_a_server_killed_before_the_drain(
    database_url: str, tmp_path: Path
) -> None:
    config = {"ADAPTER_CONFIG": str(_on_receipt_consortium(tmp_path))}
    no_drain = {**config, "ADAPTER_INGEST_DRAIN": "false"}
    docs = _documents("KIL")[:6]
    server = LiveServer(database_url, tmp_path, env=no_drain, start_timeout=START).start()
    try:
        with httpx.Client(timeout=120) as http:
            answers = [_post(http, server, d, {}) for d in docs]  # no Prefer header
            assert [a.status_code for a in answers] == [202] * len(docs)
            assert {a.json()["status"] for a in answers} == {"received"}
            assert "Preference-Applied" not in answers[0].headers
            # another source of the same file still answers when stored
            other = http.post(
                server.url("/ingest"),
                content=sorted((ROOT / "fixtures/hl7v2/oru/shiqiao-lis").glob("*.hl7"))[
                    0
                ].read_bytes(),
                headers={"X-Source-System": "shiqiao-lis", "Content-Type": "application/hl7-v2"},
            )
            assert other.status_code == 202 and other.json()["status"] != "received"
            metrics = http.get(server.url("/metrics")).text
            assert f"adapter_ingest_backlog {len(docs)}" in metrics
            age = re.search(r"^adapter_ingest_backlog_oldest_age_seconds (\S+)$", metrics, re.M)
            assert age is not None and float(age.group(1)) > 0
    finally:
        assert server.process is not None
        server.process.kill()  # between receipt and drain: nothing drained them
        server.process.wait()
        server.stop()
    assert _received(database_url) == len(docs)
    with (
        LiveServer(database_url, tmp_path, env=config, start_timeout=START) as server,
        httpx.Client(timeout=120) as http,
    ):
        for answer in answers:
            shown = _final(http, server, answer.json()["message_id"])
            assert shown["status"] == "processed" and shown["resources"]
    assert _received(database_url) == 0
