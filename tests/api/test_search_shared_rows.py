"""Parameters that share index rows (decision 0042): ``subject`` keeps rows only for the
references ``patient`` does not hold, ``combo-code`` has no rows of its own (``code`` and
``component-code`` hold them), ``telecom`` none for what ``phone`` / ``email`` hold. Every
form of search on them answers as when each parameter had its own rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from adapter.api.app import create_app
from adapter.fhir.search_params import RESOURCES
from adapter.settings import Settings
from adapter.store import save_resources
from adapter.store.models import Resource, SearchParam
from adapter.store.search_terms import reference_rows

S = "http://loinc.org"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _code(*codes: str) -> dict:
    return {"coding": [{"system": S, "code": c} for c in codes]}


def _resources() -> list[dict]:
    def obs(oid: str, **extra: object) -> dict:
        return {"resourceType": "Observation", "id": oid, "status": "final", **extra}

    return [
        {
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"family": "王", "given": ["五"]}],
            "telecom": [
                {"system": "phone", "value": "13800000000"},
                {"system": "email", "value": "wang@example.org"},
                {"system": "url", "value": "http://example.org/wang"},
            ],
        },
        {"resourceType": "Patient", "id": "p2", "name": [{"family": "李"}]},
        obs(
            "o1",
            subject={"reference": "Patient/p1"},
            code=_code("c1"),
            component=[{"code": _code("c2")}],
            effectiveDateTime="2026-05-01",
        ),
        obs("o2", subject={"reference": "Group/g1"}, code=_code("c2")),
        obs(
            "o3",
            subject={"display": "床旁样本"},
            code=_code("c3"),
            component=[{"code": _code("c1")}],
        ),
        obs("o4", code={"text": "无编码"}),
        obs("o5", subject={"reference": "Patient/p2"}, code=_code("c1")),
    ]


@pytest.fixture(scope="module")
def client(module_database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        for n, resource in enumerate(_resources()):
            with app.state.session_factory.begin() as session:
                save_resources(session, [resource], message_id=None, now=T0 + timedelta(minutes=n))
        with app.state.session_factory() as session:
            ids = {r.resource_key: r.id for r in session.scalars(select(Resource))}
            si = reference_rows()  # every row, PostgreSQL's arrays' too (decision 0088)
            client.rows = {  # type: ignore[attr-defined]
                (ids[key], param)
                for key, param in session.execute(
                    select(si.c.resource_key, SearchParam.param).join(
                        SearchParam, SearchParam.param_id == si.c.param_id
                    )
                )
            }
        yield client
    app.state.engine.dispose()


def ids(client: TestClient, url: str, **params: str) -> list[str]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
    ]


def test_the_shared_values_are_stored_once(client: TestClient) -> None:
    rows = client.rows  # type: ignore[attr-defined]
    assert not any(param == "combo-code" for _, param in rows)
    assert ("o1", "patient") in rows and ("o1", "subject") not in rows
    assert ("o2", "subject") in rows and ("o3", "subject") in rows  # a Group, a display
    assert ("p1", "phone") in rows and ("p1", "email") in rows and ("p1", "telecom") in rows
    assert RESOURCES["Observation"].params["combo-code"].row_params == (
        "combo-code",
        "code",
        "component-code",
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"subject": "Patient/p1"}, ["o1"]),
        ({"subject": "p1"}, ["o1"]),
        ({"subject": "Group/g1"}, ["o2"]),
        ({"subject:Patient": "p1"}, ["o1"]),
        ({"subject:missing": "true"}, ["o4"]),
        ({"subject:missing": "false"}, ["o1", "o2", "o3", "o5"]),
        ({"patient": "p1"}, ["o1"]),
        ({"patient:missing": "true"}, ["o2", "o3", "o4"]),
        ({"subject.name": "王"}, ["o1"]),
        ({"subject:Patient.name": "李"}, ["o5"]),
        ({"combo-code": "c1"}, ["o1", "o3", "o5"]),
        ({"combo-code": f"{S}|c2"}, ["o1", "o2"]),
        ({"combo-code:missing": "true"}, []),
        ({"combo-code:not": "c1"}, ["o2", "o4"]),
        ({"combo-code:text": "无编"}, ["o4"]),
        ({"code": "c2"}, ["o2"]),
        ({"component-code": "c1"}, ["o3"]),
    ],
)
def test_observation_searches(client: TestClient, query: dict, expected: list[str]) -> None:
    found = sorted(ids(client, "/fhir/Observation", **query))
    assert found == [f"Observation/{i}" for i in expected]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"telecom": "13800000000"}, ["p1"]),
        ({"telecom": "wang@example.org"}, ["p1"]),
        ({"telecom": "phone|13800000000"}, ["p1"]),
        ({"telecom": "http://example.org/wang"}, ["p1"]),
        ({"phone": "13800000000"}, ["p1"]),
        ({"email": "13800000000"}, []),
        ({"telecom:missing": "true"}, ["p2"]),
        ({"_has:Observation:subject:code": "c1"}, ["p1", "p2"]),
        ({"_has:Observation:subject:combo-code": "c2"}, ["p1"]),
    ],
)
def test_patient_searches(client: TestClient, query: dict, expected: list[str]) -> None:
    found = sorted(ids(client, "/fhir/Patient", **query))
    assert found == [f"Patient/{i}" for i in expected]


def test_includes_and_sorts_through_shared_rows(client: TestClient) -> None:
    with_patient = ids(client, "/fhir/Observation", _id="o1", _include="Observation:subject")
    assert with_patient == ["Observation/o1", "Patient/p1"]
    referring = ids(client, "/fhir/Patient", _id="p1", _revinclude="Observation:subject")
    assert referring == ["Patient/p1", "Observation/o1"]
    by_subject = ids(client, "/fhir/Observation", _sort="subject")
    # Group/g1 < Patient/p1 < Patient/p2; o3 (display only) and o4 have no reference
    assert by_subject[:3] == ["Observation/o2", "Observation/o1", "Observation/o5"]
    by_code = ids(client, "/fhir/Observation", _sort="-combo-code", _count="2")
    # c3, then c2 (o1's highest and o2's): the tie goes to the later change
    assert by_code == ["Observation/o3", "Observation/o2"]
