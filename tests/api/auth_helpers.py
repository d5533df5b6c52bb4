"""An app with authentication on, over the example consortium plus test clients.

    app, tokens = auth_app(database_url, tmp_path)       # tokens.get("county-operator")

Each client's secret is ``secret-<id>``, hashed with argon2 at the cheapest parameters
(the hash carries its parameters: checking it is as fast as making it); one client
(``env-reader``) reads its secret from ``AUTH_TEST_ENV_SECRET``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.api.app import create_app
from adapter.settings import DEFAULT_CONSORTIUM, Settings

COUNTY = "qingshan-county-hospital"
SHIQIAO = "shiqiao-township-centre"
ENV_NAME = "AUTH_TEST_ENV_SECRET"
_FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

# id -> (facility, roles, scope)
CLIENTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "county-source": (COUNTY, ("source",), "facility"),
    "county-reader": (COUNTY, ("reader",), "facility"),
    "county-operator": (COUNTY, ("operator",), "facility"),
    "county-auditor": (COUNTY, ("auditor",), "facility"),
    "county-admin": (COUNTY, ("admin",), "facility"),
    "shiqiao-source": (SHIQIAO, ("source",), "facility"),
    "shiqiao-reader": (SHIQIAO, ("reader",), "facility"),
    "shiqiao-operator": (SHIQIAO, ("operator",), "facility"),
    "consortium-operator": (COUNTY, ("operator",), "consortium"),
    "consortium-admin": (COUNTY, ("admin",), "consortium"),
}


def secret_of(client_id: str) -> str:
    return f"secret-{client_id}"


def consortium_with_clients(folder: Path, *, deliveries: bool = False) -> Path:
    """The example consortium plus CLIENTS; ``deliveries``: its destinations enabled (the
    outbox gets rows; nothing sends them unless a worker runs)."""
    text = DEFAULT_CONSORTIUM.read_text(encoding="utf-8")
    # the example file's clients: block is its last: these are added to it
    lines = [""]
    if "\nclients:" not in text:
        lines.append("clients:")
    for client_id, (facility, roles, scope) in CLIENTS.items():
        lines += [
            f"  - id: {client_id}",
            f"    facility: {facility}",
            f"    roles: [{', '.join(roles)}]",
            f"    scope: {scope}",
            f"    secret_hash: '{_FAST.hash(secret_of(client_id))}'",
        ]
    lines += [
        "  - id: env-reader",
        f"    facility: {COUNTY}",
        "    roles: [reader]",
        f"    secret: env:{ENV_NAME}",
    ]
    recognition = DEFAULT_CONSORTIUM.parent / "recognition.yaml"
    if recognition.is_file():  # the 互认 catalogue is read from beside the consortium file
        shutil.copyfile(recognition, folder / "recognition.yaml")
    path = folder / "consortium.yaml"
    if deliveries:
        text = text.replace("enabled: false", "enabled: true")
    path.write_text(text + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def auth_settings(
    database_url: str, folder: Path, *, deliveries: bool = False, **extra: Any
) -> Settings:
    config = consortium_with_clients(folder, deliveries=deliveries)
    extra.setdefault("data_dir", folder / "data")  # not the working directory's
    return Settings(database_url=database_url, config=config, auth=True, **extra)


def token(client: TestClient, client_id: str, secret: str | None = None) -> str:
    answer = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret if secret is not None else secret_of(client_id),
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


class Tokens:
    """A token per client, asked for once."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self._made: dict[str, str] = {}

    def get(self, client_id: str) -> str:
        if client_id not in self._made:
            self._made[client_id] = token(self.client, client_id)
        return self._made[client_id]

    def headers(self, client_id: str, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.get(client_id)}", **more}


@contextmanager
def auth_client(
    database_url: str, folder: Path, *, deliveries: bool = False, **extra: Any
) -> Iterator[tuple[FastAPI, Tokens]]:
    app = create_app(auth_settings(database_url, folder, deliveries=deliveries, **extra))
    try:
        with TestClient(app) as client:
            yield app, Tokens(client)
    finally:
        app.state.engine.dispose()
