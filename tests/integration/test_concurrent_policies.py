"""The mapping ``on_conflict`` policies when copies arrive at the same moment (issue 8,
finding 2): real threads through the real pipeline and database, released together.

keep-first-and-warn: copies of one referral racing each other still give one stored
ServiceRequest that keeps the first-stored values, names every disagreement, and references
every copy's original. keep-newer-and-warn: a discharge summary and its correction racing
each other always leave the correction stored."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline import IngestResult, Pipeline
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import read_history, read_resource

ROOT = Path(__file__).resolve().parents[2]
REFERRAL = ROOT / "fixtures" / "cda" / "referral" / "std-cda"
DISCHARGE = ROOT / "fixtures" / "cda" / "discharge" / "std-cda"
ROUNDS = 6


@pytest.fixture
def pipeline(settings: Settings, session_factory: sessionmaker[Session]) -> Pipeline:
    return make_pipeline(settings, load_consortium(settings.config), session_factory)


def _together(calls: list[Callable[[], IngestResult]]) -> list[IngestResult]:
    barrier = threading.Barrier(len(calls))
    results: list[IngestResult | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(r, IngestResult) for r in results), results
    return results  # type: ignore[return-value]


def _ref(result: IngestResult, kind: str) -> str:
    (ref,) = [r for r in result.resources if r.startswith(kind + "/")]
    return ref.split("/", 1)[1]


def _conflicts(result: IngestResult) -> list[str]:
    return sorted(i.expression or "" for i in result.issues if i.code == "conflict")


def _check_history(session: Session, kind: str, rid: str) -> dict[str, Any]:
    stored = read_resource(session, kind, rid)
    assert stored is not None
    total, versions = read_history(session, kind, rid)
    assert sorted(v.version_id for v in versions) == list(range(1, total + 1))
    assert stored["meta"]["versionId"] == str(total)
    return stored


def test_referral_copies_racing_keep_the_first_and_lose_no_original(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    slip_text = (REFERRAL / "up-slip.xml").read_text(encoding="utf-8")
    stub_text = (REFERRAL / "up-stub.xml").read_text(encoding="utf-8")
    for round_no in range(ROUNDS):
        number = f"SQ-ZZ-2026-{round_no:04d}"
        slip = slip_text.replace("SQ-ZZ-2026-0101", number).encode("utf-8")
        stub = stub_text.replace("SQ-ZZ-2026-0101", number).encode("utf-8")
        # a second stub copy: other bytes (a rescan), so another original
        stub_again = stub.replace(b"<title>", b" <title>")
        if round_no % 2:
            # the slip is stored before the two stubs race: both update the stored request
            seed = pipeline.ingest(slip, Receipt("std-cda", "cli"))
            assert seed.status == "processed"
            racing = [stub, stub_again]
        else:
            # nothing stored yet: the slip and a stub race to create the request
            seed = None
            racing = [slip, stub]
        results = _together(
            [lambda raw=raw: pipeline.ingest(raw, Receipt("std-cda", "cli")) for raw in racing]
        )
        everything = ([seed] if seed else []) + results
        sent = ([slip] if seed else []) + racing
        assert all(r.accepted for r in everything), [r.issues for r in everything]
        sr_id = _ref(everything[0], "ServiceRequest")
        assert {_ref(r, "ServiceRequest") for r in everything} == {sr_id}
        # every copy after the first stored one names the disagreement on authoredOn
        warned = [r for r in everything if _conflicts(r)]
        assert len(warned) == len(everything) - 1, [_conflicts(r) for r in everything]
        assert all(
            _conflicts(r) == ["ServiceRequest.authoredOn", "Task.authoredOn"] for r in warned
        )
        (first,) = [raw for raw, r in zip(sent, everything, strict=True) if not _conflicts(r)]
        originals = {f"DocumentReference/{_ref(r, 'DocumentReference')}" for r in everything}
        with session_factory() as session:
            stored = _check_history(session, "ServiceRequest", sr_id)
        referenced = {s.get("reference") for s in stored["supportingInfo"]}
        assert originals <= referenced, f"lost originals {originals - referenced}"
        # the first stored copy's date: the slip's or the stub's
        expected = "2026-11-24T10:00:00+08:00" if first is slip else "2026-11-25T08:30:00+08:00"
        assert stored["authoredOn"] == expected


def test_discharge_summary_and_its_correction_racing_leave_the_correction(
    pipeline: Pipeline, session_factory: sessionmaker[Session]
) -> None:
    basic_text = (DISCHARGE / "basic.xml").read_text(encoding="utf-8")
    corrected_text = (DISCHARGE / "corrected-rplc.xml").read_text(encoding="utf-8")
    for round_no in range(ROUNDS):
        stay = f"ZY26110{round_no:05d}"
        basic = basic_text.replace("ZY2611020015", stay)
        corrected = corrected_text.replace("ZY2611020015", stay).encode("utf-8")
        if round_no % 2:
            # a draft of the day before is stored first: both racers are newer than it
            draft = basic.replace("20261118163000", "20261117163000").replace(
                "CYXJ-20261118-0001", "CYXJ-20261117-0000"
            )
            assert pipeline.ingest(draft.encode("utf-8"), Receipt("std-cda", "cli")).accepted
        racing = [basic.encode("utf-8"), corrected]
        results = _together(
            [lambda raw=raw: pipeline.ingest(raw, Receipt("std-cda", "cli")) for raw in racing]
        )
        assert all(r.accepted for r in results), [r.issues for r in results]
        composition_id = _ref(results[1], "Composition")
        bundle_id = _ref(results[1], "Bundle")
        with session_factory() as session:
            composition = _check_history(session, "Composition", composition_id)
            bundle = _check_history(session, "Bundle", bundle_id)
        assert composition["status"] == "amended", f"round {round_no}: the correction was undone"
        assert bundle["identifier"]["value"] == "CYXJ-20261119-0002"
