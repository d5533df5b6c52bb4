"""``allow_from`` of an MLLP source: parsed with the ipaddress module, checked at load with
the file line of the wrong entry (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.errors import ConfigError
from adapter.peer_allow import AllowListError, parse_allow_from
from adapter.settings import DEFAULT_CONSORTIUM


def test_addresses_and_networks() -> None:
    allowed = parse_allow_from(["10.12.0.0/16", "127.0.0.1", "fd00::/8"])
    assert allowed.allows("10.12.200.7") and allowed.allows("127.0.0.1")
    assert allowed.allows("fd12::5") and allowed.allows("::ffff:10.12.0.1")  # dual stack
    assert not allowed.allows("10.13.0.1") and not allowed.allows("127.0.0.2")
    assert not allowed.allows("::1") and not allowed.allows(None)
    assert not allowed.allows("not-an-address")


@pytest.mark.parametrize(
    ("value", "position", "says"),
    [
        (["127.0.0.1", "10.12.3.0/16"], 1, "has host bits set"),
        (["10.12.0.300"], 0, "'10.12.0.300' is not an address or network"),
        (["localhost"], 0, "'localhost' is not an address or network"),
        ([16], 0, "16 is not an address or network"),
        ([], None, "allow_from is empty"),
        ("127.0.0.1", None, "must be a list"),
    ],
)
def test_wrong_entries_are_named(value: object, position: int | None, says: str) -> None:
    with pytest.raises(AllowListError) as caught:
        parse_allow_from(value)
    assert caught.value.position == position
    assert says in str(caught.value)


def _write(tmp_path: Path, connector: str) -> Path:
    """The example file with a connector on its first source (std-hl7v2)."""
    text = DEFAULT_CONSORTIUM.read_text(encoding="utf-8")
    anchor = "        mapping: _shared"
    at = text.index("\n", text.index(anchor)) + 1
    path = tmp_path / "consortium.yaml"
    path.write_text(text[:at] + connector + text[at:], encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if needle in line)


def test_a_good_list_loads(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "        connector:\n          kind: mllp\n          port: 2575\n"
        "          allow_from: [10.12.0.0/16, 127.0.0.1, '::1']\n",
    )
    _, source = load_consortium(path).source("std-hl7v2")  # type: ignore[misc]
    assert source.connector is not None
    assert source.connector["allow_from"] == ["10.12.0.0/16", "127.0.0.1", "::1"]


def test_a_wrong_entry_is_named_with_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "        connector:\n          kind: mllp\n          port: 2575\n"
        "          allow_from:\n            - 127.0.0.1\n            - 10.12.3.0/16\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    line = _line_of(path, "- 10.12.3.0/16")
    key = "facilities.0.sources.0.connector.allow_from.1"
    assert caught.value.file == f"{path}:{line}"
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}:{line}:{key}: '10.12.3.0/16' is not an")


def test_allow_from_on_another_kind_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "        connector:\n          kind: file\n          path: /tmp/in\n"
        "          allow_from: [127.0.0.1]\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    assert caught.value.file == f"{path}:{_line_of(path, 'allow_from:')}"
    assert "allow_from is a setting of MLLP sources" in str(caught.value)
