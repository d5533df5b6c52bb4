"""Translation in worker processes during bulk ingest (decision 0054): the same store as
translating in the ingesting process, one bad message still costs the others nothing, and
a worker that dies costs nothing either. Runs on SQLite and, in the ``-m db`` pass, on
PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from adapter.audit.verify import verify
from adapter.pipeline.merge import reads_stored
from adapter.pipeline.receipt import Receipt
from adapter.pipeline.translation_pool import chunk_sizes
from adapter.pipeline.translator import UnknownSourceError
from adapter.store import make_engine, migrate
from adapter.store import resources as resources_module
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditRecord
from adapter.store.models import InboundMessage, Resource, SearchParam
from adapter.store.resources import content_hash
from adapter.store.search_tokens import index_rows
from tests.integration.connector_helpers import example_pipeline
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _fixtures, _routed, _stored
from tests.integration.test_long_values import (
    _assert_located,
    _refused_oru,
    long_oru,
    refusing_database,  # noqa: F401  (a fixture, found by its name)
)
from tests.live.test_serve_workers import _alive


def test_workers_store_what_the_ingesting_process_stores(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    items = _fixtures()
    config = _routed(tmp_path)
    pipeline = pipeline_for(config, session_factory)
    with pipeline.translation_workers(2):
        pool = pipeline.translation_pool
        assert pool is not None
        bulk = list(pipeline.ingest_many(items, batch=10))
        assert pool.pids() and not pool.broken  # the workers translated
        # and derived the store's rows from each resource's content (decision 0050 amended)
        raw, receipt = items[0]
        outcome = pool.submit(raw, receipt.source_system, "m")()
        assert outcome.resources and outcome.prepared is not None
        assert outcome.prepared.zone == str(pipeline.timezone)
        # every resource, the Patient that merges with its stored version too (decision
        # 0078): a new patient's keeps its content, so the store uses what the worker derived
        assert any(reads_stored(r, outcome.policies) for r in outcome.resources)
        assert {content_hash(r) for r in outcome.resources} == outcome.prepared.rows.keys()
    assert pipeline.translation_pool is None
    assert [r.duplicate for r in bulk] == [False] * len(items)

    here_engine = make_engine(f"sqlite:///{tmp_path / 'here.db'}")
    migrate(here_engine)
    try:
        here_factory = make_factory(here_engine)
        here = list(pipeline_for(config, here_factory).ingest_many(items, batch=10))
        assert [r.status for r in bulk] == [r.status for r in here]
        assert [r.resources for r in bulk] == [r.resources for r in here]
        assert [[i.as_dict() for i in r.issues] for r in bulk] == [
            [i.as_dict() for i in r.issues] for r in here
        ]
        assert _stored(session_factory) == _stored(here_factory)
    finally:
        here_engine.dispose()
    with session_factory() as session:
        assert verify(session).ok


def test_a_new_patients_index_rows_come_from_the_worker(
    session_factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0078: a new patient's Patient merges with nothing, keeps its content and is
    stored with the rows the worker derived; the storing process derives only what changed
    in it (the message's Provenance, made there)."""
    items = _fixtures()
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    derived: Counter[str] = Counter()
    here = resources_module.index_values

    def counted(resource: dict[str, Any], zone: Any) -> Any:
        derived[resource["resourceType"]] += 1
        return here(resource, zone)

    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        pool.min_batch = 1  # one document goes to the worker too
        monkeypatch.setattr(resources_module, "index_values", counted)  # this process only
        results = list(pipeline.ingest_many(items[:1], batch=10))
    assert [r.status.startswith("processed") for r in results] == [True]
    assert "Patient" not in derived and derived["Provenance"] == 1
    with session_factory() as session:
        # every index row, a PostgreSQL array's values too (names are ids there: 0117)
        ix = index_rows()
        rows = session.scalars(
            select(SearchParam.param)
            .join(ix, ix.c.param_id == SearchParam.param_id)
            .join(Resource, Resource.resource_key == ix.c.resource_key)
            .where(Resource.resource_type == "Patient")
        ).all()
        assert {"identifier", "name", "birthdate"} <= set(rows)


def test_a_bad_message_and_a_dead_worker_cost_the_others_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    pipeline = example_pipeline(session_factory)
    garbage = b"MSH|^~\\&|broken\rPID|1\rOBX|cut off"
    first = [(long_oru(control=f"POOL{n:04d}"), Receipt("std-hl7v2", "cli")) for n in range(4)]
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        pool.min_batch = 1
        batch = [*first[:2], (garbage, Receipt("std-hl7v2", "cli")), *first[2:]]
        results = list(pipeline.ingest_many(batch, batch=10))
        assert [r.status for r in results] == ["processed"] * 2 + ["quarantined"] + [
            "processed"
        ] * 2
        assert results[2].issues and results[2].issues[0].location
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)  # the worker dies (the OOM killer, an operator)
        later = [(long_oru(control=f"POOL1{n:03d}"), Receipt("std-hl7v2", "cli")) for n in range(3)]
        after = list(pipeline.ingest_many(later, batch=10))
        assert [r.status for r in after] == ["processed"] * 3
        assert pool.broken  # the rest of the run translates in the ingesting process
        again = list(pipeline.ingest_many(later, batch=10))
        assert [r.duplicate for r in again] == [True] * 3
    with session_factory() as session:
        kept = session.scalars(select(InboundMessage.status)).all()
        assert sorted(kept) == sorted(["processed"] * 7 + ["quarantined"])
        assert verify(session).ok


def test_the_next_batch_is_translated_ahead_and_a_failed_batch_costs_it_nothing(
    session_factory: sessionmaker[Session],
    engine: Engine,
    refusing_database: None,  # noqa: F811
) -> None:
    """Batch *k + 1* goes to the worker before batch *k* is stored (decision 0069); its
    translations are the ones stored, and batch *k* failing as a whole (its held index
    rows refused at the commit: each of its messages goes on its own) neither loses nor
    repeats anything of batch *k + 1*, which also answers bytes batch *k* stored as a
    duplicate although they were sent ahead before batch *k* was stored."""
    pipeline = example_pipeline(session_factory)
    first = [long_oru(control=f"AHEAD0{n:02d}") for n in range(5)] + [_refused_oru("AHEAD005")]
    second = [long_oru(control=f"AHEAD1{n:02d}") for n in range(5)] + [first[0]]
    third = [long_oru(control=f"AHEAD2{n:02d}") for n in range(6)]
    items = [(raw, Receipt("std-hl7v2", "cli")) for raw in first + second + third]
    sent: list[list[str]] = []  # the message ids of each batch sent to the worker
    here: list[str] = []  # those translated in this process
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        pool.min_batch = 1
        submit_many = pool.submit_many
        translate_for = pipeline.translator.translate_for

        def recording(docs: list[tuple[bytes, str, str]]) -> Any:
            sent.append([message_id for _, _, message_id in docs])
            return submit_many(docs)

        def counting(raw: bytes, facility: Any, source: Any, message_id: str) -> Any:
            here.append(message_id)
            return translate_for(raw, facility, source, message_id)

        pool.submit_many = recording  # type: ignore[method-assign]
        pipeline.translator.translate_for = counting  # type: ignore[method-assign]
        results = pipeline.ingest_many(items, batch=6)
        batch_one = [next(results) for _ in range(6)]
        assert len(sent) == 2  # the second batch was sent before the first was stored
        rest = list(results)
        assert len(sent) == 3 and not pool.broken
    assert [r.status for r in batch_one] == ["processed"] * 5 + ["quarantined"]
    _assert_located(batch_one[5].issues[0].as_dict())
    batch_two, batch_three = rest[:6], rest[6:]
    assert [r.status for r in rest] == ["processed"] * 12
    assert [r.duplicate for r in rest] == [False] * 5 + [True] + [False] * 6
    assert batch_two[5].message_id == batch_one[0].message_id
    # the translations made ahead are the ones stored: same message ids, none made here
    ahead = [r.message_id for r in batch_two[:5] + batch_three]
    assert ahead == sent[1][:5] + sent[2]
    assert not set(here) & set(ahead)
    with session_factory() as session:
        kept = session.scalars(select(InboundMessage.id)).all()
        assert len(kept) == 17 and set(kept) == {r.message_id for r in batch_one} | set(ahead)
        translated = Counter(
            r.message_id
            for r in session.scalars(select(AuditRecord))
            if r.action == "message.translated"
        )
        # each message stored once (the refused one is kept without a translation record)
        assert translated == dict.fromkeys(set(kept) - {batch_one[5].message_id}, 1)
        assert verify(session).ok


KILLED_PARENT = """
import os, signal, sys
from pathlib import Path
from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import make_engine, session_factory

if __name__ == "__main__":
    settings = Settings(config=Path(sys.argv[1]))
    consortium = load_consortium(settings.config)
    pipeline = make_pipeline(settings, consortium, session_factory(make_engine("sqlite://")))
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        outcome = pool.submit(Path(sys.argv[2]).read_bytes(), "std-hl7v2", "m")()
        print(pool.pids()[0], outcome.failed, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_leaves_when_its_process_is_killed(tmp_path: Path) -> None:
    """``adapter sync`` killed with SIGKILL (a deploy, the OOM killer) leaves no translation
    worker behind."""
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "killed_parent.py"
    script.write_text(KILLED_PARENT, encoding="utf-8")
    oru = root / "fixtures" / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7"
    done = subprocess.run(
        [sys.executable, str(script), str(root / "fixtures" / "consortium.yaml"), str(oru)],
        capture_output=True,
        timeout=120,
        cwd=root,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    pid, failed = done.stdout.decode().split()
    assert failed == "False"  # the worker translated the message
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(int(pid)):
        time.sleep(0.2)
    assert not _alive(int(pid)), f"translation worker {pid} outlived its killed parent"


def test_a_batch_goes_in_chunks_and_a_document_that_raises_there_is_translated_here(
    session_factory: sessionmaker[Session],
) -> None:
    """Bulk ingest sends a batch in round trips of 1, 2, 4, 8 documents (decision 0066):
    each document's outcome is its own, in order; one whose translation raised in the
    worker is translated in the ingesting process, which raises the same error."""
    pipeline = example_pipeline(session_factory)
    items = [(long_oru(control=f"CHUNK{n:03d}"), "std-hl7v2", f"m{n}") for n in range(7)]
    items[4] = (items[4][0], "no-such-source", "m4")  # raises in the worker, and here
    with pipeline.translation_workers(1):
        pool = pipeline.translation_pool
        assert pool is not None
        executor = pool._pool()
        sent: list[int] = []
        plain_submit = executor.submit

        def counted(fn: Any, *args: Any) -> Any:
            sent.append(len(args[0]))
            return plain_submit(fn, *args)

        executor.submit = counted  # type: ignore[method-assign]
        getters = pool.submit_many(items)
        assert sent == [1, 2, 4]  # three round trips for seven documents
        for k, outcome_of in enumerate(getters):
            if k == 4:
                with pytest.raises(UnknownSourceError):
                    outcome_of()
                continue
            outcome = outcome_of()
            assert not outcome.failed and outcome.resources
            assert outcome.prepared is not None  # from the worker (only a worker prepares)
            raw, source_system, message_id = items[k]
            facility, source = pipeline.translator.source(source_system)
            here = pipeline.translator.translate_for(raw, facility, source, message_id)
            assert outcome.resources == here.resources  # this document's, not a neighbour's
        assert not pool.broken


def test_chunk_sizes() -> None:
    assert chunk_sizes(0, 8) == []
    assert chunk_sizes(1, 8) == [1]
    assert chunk_sizes(7, 8) == [1, 2, 4]
    assert chunk_sizes(100, 8) == [1, 2, 4, *[8] * 11, 5]
    assert sum(chunk_sizes(93, 8)) == 93
