"""Group commit through the real server (decision 0051): four clients posting at once to
``adapter serve`` get, request by request, the answers one client gets from a server that
stores each request alone (ADAPTER_INGEST_GROUP_MAX=0): the same statuses, bodies and
headers, a quarantined document and a duplicate among them, and each request's own id on
its audit records. Runs on SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from adapter.store import make_engine
from adapter.store.audit_log import AuditRecord
from tests.integration.test_long_values import long_oru
from tests.live.server import LiveServer

START = 120.0  # a loaded shared machine starts the server slowly
CLIENTS = 4


def _documents(prefix: str) -> list[tuple[str, str, bytes]]:
    """(request id, source, bytes): new reports, a duplicate, garbage, an unknown source."""
    docs = [(f"{prefix}-{n}", "std-hl7v2", long_oru(control=f"{prefix}{n:04d}")) for n in range(10)]
    docs.append((f"{prefix}-again", "std-hl7v2", docs[3][2]))  # the same bytes again
    docs.append((f"{prefix}-garbage", "std-hl7v2", b"MSH|^~\\&|broken " + prefix.encode()))
    docs.append((f"{prefix}-unknown", "nobody", long_oru(control=f"{prefix}X")))
    return docs


def _post(http: httpx.Client, url: str, doc: tuple[str, str, bytes]) -> httpx.Response:
    request_id, source, raw = doc
    return http.post(
        url,
        content=raw,
        headers={
            "X-Source-System": source,
            "Content-Type": "application/hl7-v2",
            "X-Request-Id": request_id,
        },
    )


def _shape(answer: httpx.Response) -> tuple[Any, ...]:
    """What a request's answer says, without the ids that differ between runs."""
    body = answer.json()
    issues = tuple(sorted((i.get("severity"), i.get("code")) for i in body.get("issue") or []))
    if answer.status_code == 202:
        issues = tuple(sorted((i["severity"], i["code"]) for i in body["issues"]))
        return (202, body["status"], body["duplicate"], len(body["resources"]), issues)
    return (answer.status_code, body.get("resourceType"), issues)


def _check_headers(request_id: str, answer: httpx.Response) -> None:
    assert answer.headers["X-Request-Id"] == request_id
    if answer.status_code in (202, 422):
        message_id = answer.headers["X-Message-Id"]
        assert answer.headers["Location"] == f"/messages/{message_id}"
        if answer.status_code == 202:
            assert answer.json()["message_id"] == message_id


def test_four_clients_get_what_one_client_gets_alone(database_url: str, tmp_path: Path) -> None:
    alone_docs, grouped_docs = _documents("SEQ"), _documents("GRP")
    alone: dict[str, httpx.Response] = {}
    off = {"ADAPTER_INGEST_GROUP_MAX": "0"}
    with (
        LiveServer(database_url, tmp_path, env=off, start_timeout=START) as server,
        httpx.Client(timeout=120) as http,
    ):
        for doc in alone_docs:
            alone[doc[0]] = _post(http, server.url("/ingest"), doc)
    grouped: dict[str, httpx.Response] = {}
    with LiveServer(database_url, tmp_path, start_timeout=START) as server:
        parts = [grouped_docs[n::CLIENTS] for n in range(CLIENTS)]

        def client(part: list[tuple[str, str, bytes]]) -> None:
            with httpx.Client(timeout=120) as http:
                for doc in part:
                    grouped[doc[0]] = _post(http, server.url("/ingest"), doc)

        threads = [threading.Thread(target=client, args=(p,)) for p in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(grouped) == len(grouped_docs)
    for request_id, answer in [*alone.items(), *grouped.items()]:
        _check_headers(request_id, answer)
    # request by request (of the bytes sent twice, either may come first when concurrent)
    for (sid, _, _), (gid, _, _) in zip(alone_docs, grouped_docs, strict=True):
        if sid.endswith(("-3", "-again")):
            continue
        assert _shape(grouped[gid]) == _shape(alone[sid]), gid
    twice = Counter(_shape(grouped[g]) for g in ("GRP-3", "GRP-again"))
    assert twice == Counter(_shape(alone[s]) for s in ("SEQ-3", "SEQ-again"))
    assert grouped["GRP-3"].json()["message_id"] == grouped["GRP-again"].json()["message_id"]
    assert grouped["GRP-garbage"].status_code == 422
    assert grouped["GRP-unknown"].status_code >= 400
    # each request's audit records carry its own request id
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            records = conn.execute(
                select(AuditRecord.request_id, AuditRecord.message_id, AuditRecord.action)
            ).all()
    finally:
        engine.dispose()
    by_message: dict[str, set[str]] = {}
    for request_id, message_id, _ in records:
        if request_id and message_id:
            by_message.setdefault(message_id, set()).add(request_id)
    for request_id, answer in grouped.items():
        message_id = answer.headers.get("X-Message-Id")
        if message_id:
            assert request_id in by_message[message_id], request_id
            assert all(r.startswith("GRP") for r in by_message[message_id]), by_message
