"""The authorisation matrix (issue 11 section 2), generated from the app's route table:
every route x every role x (own facility / consortium scope), and no token at all.

A route without a rule fails here (and is refused at run time); a rule for a route that no
longer exists fails too. What each role may do is in adapter/auth/rules.py and
docs/security.md; this test checks the running app answers by it: 401 without a token
(with ``WWW-Authenticate: Bearer``), 403 with an OperationOutcome for a role the rule does
not name, and neither for a role it names. Which facility's data a permitted call sees is
tested with two facilities in test_auth_facilities.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from adapter.api.app import ROUTERS
from adapter.auth.rules import ROLES, RULES
from adapter.console.setup import CONSOLE_ROUTERS
from adapter.settings import PROJECT_ROOT
from tests.api.auth_helpers import CLIENTS, Tokens, auth_client

# path parameters filled with values that name nothing: a permitted call answers 404/400
FILL = {
    "resource_type": "Patient",
    "resource_id": "p-none",
    "version_id": "1",
    "message_id": "00000000-0000-4000-8000-000000000000",
    "delivery_id": "999999",
    "event_id": "999999",
    "patient_id": "p-none",
    "composition_id": "c-none",
    "item_id": "999999",
    "merge_id": "999999",
    "person_id": "p-none",
    "task_id": "t-none",
    "consent_id": "consent-none",
    "lang": "en",
}
# one client per role, of the county hospital's facility, facility scope
BY_ROLE = {role: f"county-{role}" for role in ROLES}
CONSORTIUM = {"operator": "consortium-operator", "admin": "consortium-admin"}


def _routes() -> list[tuple[str, str, str]]:
    """(route name, method, path) of every route the app serves from ROUTERS and the
    console's routers (whose session rules tests/console/test_console_access.py checks)."""
    found = []
    for router in (*ROUTERS, *CONSOLE_ROUTERS):
        for route in router.routes:
            assert isinstance(route, APIRoute), route
            for method in sorted(route.methods):
                found.append((route.name, method, route.path))
    return found


ROUTES = _routes()
# bearer-token routes; the console's (session cookie) are in tests/console/
API_ROUTES = [r for r in ROUTES if not RULES[r[0]].session]


def test_every_route_has_a_rule_and_every_rule_a_route() -> None:
    names = {name for name, _, _ in ROUTES}
    assert names - set(RULES) == set(), "routes without an access rule (adapter/auth/rules.py)"
    assert set(RULES) - names == set(), "rules for routes that no longer exist"
    assert set(BY_ROLE.values()) <= set(CLIENTS)


@pytest.fixture(scope="module")
def matrix(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Tokens]]:
    with auth_client(module_database_url, tmp_path_factory.mktemp("matrix")) as (_app, tokens):
        yield tokens.client, tokens


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> object:
    url = path.format(**{k: v for k, v in FILL.items() if "{" + k + "}" in path})
    return client.request(method, url, headers=headers)


def _forbidden(answer: object) -> None:
    assert answer.status_code == 403, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("name", "method", "path"), API_ROUTES, ids=[f"{m} {p}" for _, m, p in API_ROUTES]
)
def test_route_by_role(
    matrix: tuple[TestClient, Tokens], name: str, method: str, path: str
) -> None:
    client, tokens = matrix
    rule = RULES[name]
    anonymous = _call(client, method, path, {})
    if rule.limit == "public":
        assert anonymous.status_code not in (401, 403), anonymous.text
        return
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["resourceType"] == "OperationOutcome"
    for role in ROLES:
        headers = tokens.headers(BY_ROLE[role])
        if name == "ingest":  # its own facility's source system
            headers["X-Source-System"] = "std-hl7v2"
        answer = _call(client, method, path, headers)
        if role not in rule.roles or rule.limit == "consortium":
            _forbidden(answer)
        else:
            assert answer.status_code not in (401, 403), (role, answer.text)
        if role in CONSORTIUM and role in rule.roles:
            wide = _call(client, method, path, tokens.headers(CONSORTIUM[role]))
            assert wide.status_code not in (401, 403), (role, wide.text)


def test_a_source_sends_only_as_its_own_facility_s_systems(
    matrix: tuple[TestClient, Tokens],
) -> None:
    client, tokens = matrix
    message = (PROJECT_ROOT / "fixtures/hl7v2/oru/shiqiao-lis/biochem-lf.hl7").read_bytes()
    headers = {"Content-Type": "application/hl7-v2", "X-Source-System": "shiqiao-lis"}
    other = client.post(
        "/ingest", content=message, headers=tokens.headers("county-source", **headers)
    )
    _forbidden(other)
    own = client.post(
        "/ingest", content=message, headers=tokens.headers("shiqiao-source", **headers)
    )
    assert own.status_code == 202, own.text
