"""The consortium file's ``clients:`` are checked at load like the rest of it: a mistake
stops start-up naming the file, the line and the key (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.errors import ConfigError
from adapter.settings import DEFAULT_CONSORTIUM

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$8sX1kZ3m1bC9r3wV0QvX0Q"


def _with_clients(client_yaml: str) -> str:
    """The example file with ``client_yaml`` as its only clients (its own block is last)."""
    text = DEFAULT_CONSORTIUM.read_text(encoding="utf-8")
    return text[: text.index("\nclients:")] + "\nclients:\n" + client_yaml


def _load(tmp_path: Path, client_yaml: str) -> ConfigError:
    text = _with_clients(client_yaml)
    path = tmp_path / "consortium.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    return caught.value


def _line_of(tmp_path: Path, needle: str) -> int:
    lines = (tmp_path / "consortium.yaml").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("client", "needle", "key", "says"),
    [
        (
            "  - id: a\n    facility: nowhere\n    roles: [reader]\n    secret: env:A\n",
            "facility: nowhere",
            "clients.0.facility",
            "unknown facility 'nowhere'",
        ),
        (
            "  - id: a\n    facility: liuhe-township-centre\n    roles: [root]\n"
            "    secret: env:A\n",
            "roles: [root]",
            "clients.0.roles.0",
            "'source', 'reader', 'operator', 'auditor' or 'admin'",
        ),
        (
            "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader]\n"
            "    secret: plain-text\n",
            "secret: plain-text",
            "clients.0.secret",
            "the secret itself never stands in this file",
        ),
        (
            "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader]\n"
            "    secret_hash: md5-abc\n",
            "secret_hash: md5",
            "clients.0.secret_hash",
            "argon2 hash string",
        ),
    ],
)
def test_a_bad_client_names_file_line_and_key(
    tmp_path: Path, client: str, needle: str, key: str, says: str
) -> None:
    error = _load(tmp_path, client)
    assert error.key == key
    assert error.file == f"{tmp_path / 'consortium.yaml'}:{_line_of(tmp_path, needle)}"
    assert says in error.message


def test_a_client_needs_exactly_one_secret_and_ids_are_unique(tmp_path: Path) -> None:
    both = _load(
        tmp_path,
        "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader]\n"
        f"    secret: env:A\n    secret_hash: '{HASH}'\n",
    )
    assert "exactly one of secret" in both.message and both.key == "clients.0"
    twice = _load(
        tmp_path,
        "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader]\n    secret: env:A\n"
        "  - id: a\n    facility: liuhe-township-centre\n    roles: [source]\n    secret: env:B\n",
    )
    assert "client id 'a' is used twice" in twice.message and twice.key == "clients.1.id"


def test_consortium_scope_is_for_operators_and_admins(tmp_path: Path) -> None:
    error = _load(
        tmp_path,
        "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader]\n"
        "    scope: consortium\n    secret: env:A\n",
    )
    assert "scope consortium is for operator or admin" in error.message


def test_good_clients_load(tmp_path: Path) -> None:
    text = _with_clients(
        "  - id: a\n    facility: liuhe-township-centre\n    roles: [reader, source]\n"
        f"    secret_hash: '{HASH}'\n"
    )
    path = tmp_path / "consortium.yaml"
    path.write_text(text, encoding="utf-8")
    client = load_consortium(path).client("a")
    assert client is not None and client.roles == ["reader", "source"]
