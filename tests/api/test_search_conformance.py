"""Every declared search parameter finds what its official R4 FHIRPath expression selects.

The R4 SearchParameter definitions (tests/data/fhir-r4-search-parameters) are evaluated
with fhirpathpy over the fixture resources (every ``*.expected.json`` translation under
fixtures/, the adapter's published CodeSystems and the edge cases of
tests/api/search_fixtures.py). For each parameter:

* presence: ``param:missing=false`` finds exactly the resources the expression selects
  anything in;
* values (token and reference parameters, a few values each): ``param=system|code``,
  ``param=Type/id`` find exactly the resources whose selection holds that value;
* strings given as plain strings: ``param:exact=text`` finds at least those resources.

``where(resolve() is X)`` cannot be evaluated without a server; it is read as "a literal
reference to an X", which is what resolving would establish for these resources.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirpathpy import evaluate
from fhirpathpy.models import models

from adapter.api.app import create_app
from adapter.consortium import load_consortium
from adapter.fhir.index_values import normalize_reference
from adapter.fhir.published import published_resources
from adapter.fhir.search_params import RESOURCES
from adapter.recognition.catalogue import Catalogue, load_configured_catalogue
from adapter.settings import Settings
from adapter.store import save_resources
from tests.api import search_fixtures

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "tests" / "data" / "fhir-r4-search-parameters" / "search-parameters.json"
_RESOLVE = re.compile(r"\.where\(resolve\(\) is (\w+)\)")
VALUES_PER_PARAM = 3


def example_catalogue() -> Catalogue | None:
    """The recognition catalogue an app with the default settings loads."""
    settings = Settings()
    consortium = load_consortium(settings.config)
    return load_configured_catalogue(settings.recognition_catalogue, settings.config, consortium)


def fixture_resources() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((ROOT / "fixtures").rglob("*.expected.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data.get("resources", []) if isinstance(data, dict) else data
        if isinstance(data, dict):  # an MLLP capture's golden: one output per message
            items = [*items, *(r for m in data.get("messages", []) for r in m["resources"])]
        for resource in items:
            if isinstance(resource, dict) and resource.get("resourceType") in RESOURCES:
                out[(resource["resourceType"], resource["id"])] = resource
    # the adapter's own CodeSystems, which every app publishes at start-up (with the
    # example catalogue's recognition code systems: fixtures/recognition.yaml)
    for resource in [*published_resources(example_catalogue()), *search_fixtures.resources()]:
        out[(resource["resourceType"], resource["id"])] = resource
    return out


def expression(resource_type: str, name: str) -> str | None:
    """The part of the R4 expression that is about ``resource_type``."""
    for entry in json.loads(DEFINITIONS.read_text(encoding="utf-8"))["entry"]:
        sp = entry["resource"]
        if sp["code"] != name or not ({resource_type, "Resource"} & set(sp["base"])):
            continue
        parts = [p.strip() for p in sp.get("expression", "").split(" | ")]
        mine = [p for p in parts if p.lstrip("(").startswith(f"{resource_type}.")]
        mine = mine or [p for p in parts if p.startswith("Resource.")]
        text = " | ".join(mine)
        return _RESOLVE.sub(
            lambda m: f".where(reference.matches('(^|/){m[1]}/[A-Za-z0-9.-]+(/_history/.+)?$'))",
            text.replace("Resource.", f"{resource_type}."),
        )
    return None


CASES = [
    (rtype, name)
    for rtype, search in RESOURCES.items()
    for name, param in search.params.items()
    if not param.column
]


@pytest.fixture(scope="module")
def stored() -> dict[tuple[str, str], dict[str, Any]]:
    return fixture_resources()


@pytest.fixture(scope="module")
def client(module_database_url: str, stored: dict) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=module_database_url))
    with TestClient(app) as client:
        with app.state.session_factory.begin() as session:
            save_resources(session, list(stored.values()), message_id=None, now=search_fixtures.T0)
        yield client
    app.state.engine.dispose()


def found(client: TestClient, rtype: str, name: str, value: str) -> set[str]:
    response = client.get(
        f"/fhir/{rtype}", params={name: value, "_count": "500", "_elements": "id"}
    )
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", [])}


def _tokens(node: Any) -> list[str]:
    if isinstance(node, bool):
        return ["true" if node else "false"]
    if isinstance(node, str):
        return [node]
    if not isinstance(node, dict):
        return []
    if "coding" in node:
        return [t for c in node["coding"] for t in _tokens(c)]
    if isinstance(node.get("code"), str):
        return [f"{node.get('system') or ''}|{node['code']}"]
    if isinstance(node.get("value"), str):
        return [f"{node.get('system') or ''}|{node['value']}"]
    return []


def _references(node: Any) -> list[str]:
    text = (
        node if isinstance(node, str) else node.get("reference") if isinstance(node, dict) else None
    )
    reference = normalize_reference(text) if isinstance(text, str) else None
    return [reference] if reference and "/" in reference and ":" not in reference else []


@pytest.mark.parametrize(("rtype", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
def test_parameter_matches_its_r4_expression(
    client: TestClient, stored: dict, rtype: str, name: str
) -> None:
    expr = expression(rtype, name)
    param = RESOURCES[rtype].params[name]
    if expr is None:  # the adapter's own parameter: no R4 expression to compare with
        pytest.skip(f"{rtype}.{name} is the adapter's own")
    selected: dict[str, list[Any]] = {}
    for (t, rid), resource in stored.items():
        if t == rtype:
            nodes = evaluate(resource, expr, {}, models["r4"])
            if nodes:
                selected[rid] = nodes
    assert found(client, rtype, f"{name}:missing", "false") == set(selected), expr
    by_value: dict[str, set[str]] = defaultdict(set)
    for rid, nodes in selected.items():
        for node in nodes:
            values = (
                _tokens(node)
                if param.type == "token"
                else _references(node)
                if param.type == "reference"
                else [node]
                if param.type == "string" and isinstance(node, str)
                else []
            )
            for value in values:
                by_value[value].add(rid)
    for value in sorted(by_value)[:VALUES_PER_PARAM]:
        escaped = value.replace("\\", "\\\\").replace(",", "\\,")  # FHIR search escaping
        if param.type == "string":
            assert by_value[value] <= found(client, rtype, f"{name}:exact", escaped), value
        else:
            assert found(client, rtype, name, escaped) == by_value[value], value
