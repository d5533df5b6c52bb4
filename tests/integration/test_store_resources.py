"""Saving resources: versions, meta stamps, history, index rows, the transaction contract."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import (
    Resource,
    ResourceVersion,
    SearchIndex,
    create_message,
    read_history,
    read_resource,
    read_version,
    reindex,
    save_resources,
    search,
)
from adapter.store.engine import read_only
from adapter.store.models import SearchParam, SearchSystem
from adapter.store.search_tokens import index_rows

T0 = datetime(2026, 5, 3, 2, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def patient(**extra) -> dict:
    base = {
        "resourceType": "Patient",
        "id": "p1",
        "gender": "female",
        "birthDate": "1980-05-03",
        "name": [{"family": "王", "given": ["芳"]}],
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "11010119800503002X"}],
    }
    return {**base, **extra}


def observation(**extra) -> dict:
    base = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-05-03T10:00:00+08:00",
    }
    return {**base, **extra}


def count(session: Session, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return session.execute(query).scalar_one()


def index_values(session: Session, rtype: str, rid: str, param: str) -> set[tuple]:
    si, sp = index_rows(), SearchParam.__table__  # PostgreSQL's arrays as rows too (0103)
    rows = session.execute(
        select(SearchSystem.system, si.c.code, si.c.value, si.c.reference)
        .select_from(si)
        .join(sp, sp.c.param_id == si.c.param_id)
        .join(Resource, Resource.resource_key == si.c.resource_key)
        .outerjoin(SearchSystem, SearchSystem.system_id == si.c.system_id)
        .where(sp.c.resource_type == rtype, Resource.id == rid, sp.c.param == param)
    ).all()
    return {tuple(r) for r in rows}


def test_new_resources_get_version_1_and_meta_stamps(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        saved = save_resources(session, [patient(), observation()], message_id=None, now=T0)
    assert [(s.resource_type, s.id, s.version_id, s.changed) for s in saved] == [
        ("Patient", "p1", 1, True),
        ("Observation", "o1", 1, True),
    ]
    body = saved[0].body
    assert body["meta"] == {"versionId": "1", "lastUpdated": "2026-05-03T02:00:00.123+00:00"}
    assert list(body)[:3] == ["resourceType", "id", "meta"]
    assert saved[1].patient_key == "Patient/p1"
    with session_factory() as session:
        assert read_resource(session, "Patient", "p1") == body
        stored = session.get(Resource, ("Observation", "o1"))
        assert stored.patient_key == "Patient/p1"
        assert stored.last_updated == datetime(2026, 5, 3, 2, 0, 0, 123000, tzinfo=UTC)


def test_unchanged_content_keeps_version_and_time(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        first = save_resources(session, [patient()], message_id=None, now=T0)[0]
    # same content, different key order, and a stale meta stamp: still unchanged
    resent = dict(reversed(list(patient().items())))
    resent["meta"] = {"versionId": "7", "lastUpdated": "2020-01-01T00:00:00Z"}
    with session_factory.begin() as session:
        again = save_resources(session, [resent], message_id=None, now=T1)[0]
    assert (again.version_id, again.changed) == (1, False)
    assert again.body["meta"] == first.body["meta"]
    with session_factory() as session:
        # one version, the current one: the resource row, no history row (decision 0075)
        assert count(session, ResourceVersion) == 0
        assert read_history(session, "Patient", "p1")[0] == 1
        assert read_resource(session, "Patient", "p1")["meta"]["versionId"] == "1"


def test_changed_content_gets_version_2_and_history_keeps_v1(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [patient()], message_id=None, now=T0)
    with session_factory.begin() as session:
        saved = save_resources(session, [patient(gender="male")], message_id=None, now=T1)[0]
    assert (saved.version_id, saved.changed) == (2, True)
    with session_factory() as session:
        current = read_resource(session, "Patient", "p1")
        v1 = read_version(session, "Patient", "p1", 1)
        v2 = read_version(session, "Patient", "p1", 2)
        total, versions = read_history(session, "Patient", "p1")
        assert read_version(session, "Patient", "p1", 3) is None
    assert current == v2 and current["gender"] == "male"
    assert current["meta"]["versionId"] == "2"
    assert current["meta"]["lastUpdated"] == "2026-05-03T03:00:00.123+00:00"
    assert v1["gender"] == "female" and v1["meta"]["versionId"] == "1"
    assert total == 2 and [v.version_id for v in versions] == [2, 1]


def test_history_keeps_each_body_once(session_factory: sessionmaker) -> None:
    """The current version is only the resource row; it becomes a history row, with its
    body, when a newer version supersedes it, and every version still reads back whole
    (decisions 0042, 0075)."""
    genders = ["female", "male", "other"]
    for n, gender in enumerate(genders):
        with session_factory.begin() as session:
            save_resources(
                session, [patient(gender=gender)], message_id=None, now=T0 + n * (T1 - T0)
            )
    with session_factory() as session:
        bodies = dict(
            session.execute(
                select(ResourceVersion.version_id, ResourceVersion.body).where(
                    ResourceVersion.id == "p1"
                )
            ).all()
        )
        assert 3 not in bodies  # the current one: the resource row
        assert [bodies[1]["gender"], bodies[2]["gender"]] == genders[:2]
        assert read_version(session, "Patient", "p1", 4) is None
        assert read_version(session, "Patient", "p1", 0) is None
        assert [read_version(session, "Patient", "p1", n)["gender"] for n in (1, 2, 3)] == genders
        total, versions = read_history(session, "Patient", "p1")
        assert total == 3
        assert [(v.version_id, v.body["gender"]) for v in versions] == [
            (3, "other"),
            (2, "male"),
            (1, "female"),
        ]
        assert versions[0].body == read_resource(session, "Patient", "p1")


def test_a_meta_profile_change_is_a_change(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [patient()], message_id=None, now=T0)
    profiled = patient(meta={"profile": ["http://example.org/StructureDefinition/cn-patient"]})
    with session_factory.begin() as session:
        saved = save_resources(session, [profiled], message_id=None, now=T1)[0]
    assert saved.version_id == 2
    assert saved.body["meta"]["profile"] == profiled["meta"]["profile"]
    assert saved.body["meta"]["versionId"] == "2"


def test_index_rows_are_rebuilt_when_the_resource_changes(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [observation()], message_id=None, now=T0)
    changed = observation(code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}]})
    with session_factory.begin() as session:
        save_resources(session, [changed], message_id=None, now=T1)
    with session_factory() as session:
        assert index_values(session, "Observation", "o1", "code") == {
            ("http://loinc.org", "2345-7", None, None)
        }
        assert index_values(session, "Observation", "o1", "patient") == {
            (None, None, None, "Patient/p1")
        }


def test_rollback_of_the_callers_transaction_stores_nothing(session_factory: sessionmaker) -> None:
    with pytest.raises(RuntimeError), session_factory.begin() as session:
        message = create_message(
            session,
            source_system="lis",
            facility_id="f1",
            raw=b"MSH|",
            content_type="x",
            sha256="0" * 64,
            detected_format="hl7v2",
            encoding="utf-8",
            received_at=T0,
        )
        save_resources(session, [patient(), observation()], message_id=message.id, now=T0)
        raise RuntimeError("mapping failed after the save")
    with session_factory() as session:
        for model in (Resource, ResourceVersion, SearchIndex):
            assert count(session, model) == 0
        assert read_resource(session, "Patient", "p1") is None


def test_save_does_not_commit_by_itself(session_factory: sessionmaker) -> None:
    session = session_factory()
    try:
        save_resources(session, [patient()], message_id=None, now=T0)
        session.rollback()
    finally:
        session.close()
    with session_factory() as other:
        assert read_resource(other, "Patient", "p1") is None


def test_one_batch_with_new_changed_and_unchanged(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [patient(), observation()], message_id=None, now=T0)
    batch = [patient(), observation(status="amended"), observation(id="o2", status="preliminary")]
    with session_factory.begin() as session:
        saved = save_resources(session, batch, message_id=None, now=T1)
    assert [(s.id, s.version_id, s.changed) for s in saved] == [
        ("p1", 1, False),
        ("o1", 2, True),
        ("o2", 1, True),
    ]
    with session_factory() as session:
        assert count(session, ResourceVersion) == 1  # o1's version 1, superseded
        assert count(session, Resource) == 3
        totals = {
            rid: read_history(session, t, rid)[0]
            for t, rid in (("Patient", "p1"), ("Observation", "o1"), ("Observation", "o2"))
        }
        assert totals == {"p1": 1, "o1": 2, "o2": 1}


def test_a_resource_twice_in_one_batch_is_stored_once_last_wins(
    session_factory: sessionmaker,
) -> None:
    with session_factory.begin() as session:
        saved = save_resources(
            session, [patient(), patient(gender="male")], message_id=None, now=T0
        )
    assert [s.version_id for s in saved] == [1, 1]
    with session_factory() as session:
        assert read_resource(session, "Patient", "p1")["gender"] == "male"
        assert read_history(session, "Patient", "p1")[0] == 1
        assert count(session, ResourceVersion) == 0


def test_resources_record_the_message_that_changed_them(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        message = create_message(
            session,
            source_system="his",
            facility_id="f1",
            raw=b"x",
            content_type="x",
            sha256="1" * 64,
            detected_format="json",
            encoding="utf-8",
            received_at=T0,
        )
        save_resources(session, [patient()], message_id=message.id, now=T0, facility_id="f1")
    with session_factory() as session:
        row = session.get(Resource, ("Patient", "p1"))
        assert (row.message_id, row.facility_id) == (message.id, "f1")
        _, versions = read_history(session, "Patient", "p1")
        assert [v.message_id for v in versions] == [message.id]


def test_unknown_message_id_violates_the_foreign_key(session_factory: sessionmaker) -> None:
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        save_resources(session, [patient()], message_id="no-such-message", now=T0)


def test_resource_without_id_is_refused(session_factory: sessionmaker) -> None:
    with pytest.raises(ValueError), session_factory.begin() as session:
        save_resources(session, [{"resourceType": "Patient"}], message_id=None, now=T0)


def test_naive_times_are_refused(session_factory: sessionmaker) -> None:
    with pytest.raises(Exception, match="naive"), session_factory.begin() as session:
        save_resources(session, [patient()], message_id=None, now=datetime(2026, 5, 3))


def test_reindex_rebuilds_index_rows(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [patient(), observation()], message_id=None, now=T0)
    with session_factory.begin() as session:
        session.execute(SearchIndex.__table__.delete())
    with session_factory.begin() as session:
        assert reindex(session) == 2
    with session_factory() as session:
        assert index_values(session, "Patient", "p1", "gender") == {(None, "female", None, None)}


def test_concurrent_read_then_write_transactions_do_not_fail(session_factory: sessionmaker) -> None:
    # on SQLite a deferred transaction that reads first fails with "database is locked"
    # when another writer commits in between; the store begins write transactions early
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        for n in range(15):
            try:
                with session_factory.begin() as session:
                    read_resource(session, "Patient", "p1")
                    save_resources(session, [patient(id=f"w{worker}-{n}")], message_id=None, now=T0)
            except BaseException as exc:
                errors.append(exc)

    def reader() -> None:
        for _ in range(30):
            try:
                with session_factory() as session:
                    search(read_only(session), "Patient", [], count=5)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        assert count(session, Resource) == 45
