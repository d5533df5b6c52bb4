"""The server drain's wait for a pause in a burst of receipts (decision 0111)."""

from __future__ import annotations

import pytest

from adapter.api.drain_process import DEFER_SECONDS, drain_defer_seconds
from adapter.settings import Settings

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("url", "apart", "expected"),
    [
        ("sqlite:///./adapter.db", True, DEFER_SECONDS),  # one write lock: receipts first
        ("sqlite:///./adapter.db", False, DEFER_SECONDS),
        (PG, False, DEFER_SECONDS),  # a thread of the server: one interpreter lock
        (PG, True, 0.0),  # its own process, writers side by side: no wait
        ("postgres://postgres@127.0.0.1/test", True, 0.0),
    ],
)
def test_unset_defer_depends_on_the_database_and_the_drain_process(
    url: str, apart: bool, expected: float
) -> None:
    settings = Settings(database_url=url, ingest_drain_defer_seconds=None)
    assert drain_defer_seconds(settings, apart=apart) == expected


@pytest.mark.parametrize("configured", [0.0, 0.5, 2.0, 7.0])
@pytest.mark.parametrize("url", ["sqlite:///./adapter.db", PG])
def test_a_configured_defer_is_kept_everywhere(url: str, configured: float) -> None:
    settings = Settings(database_url=url, ingest_drain_defer_seconds=configured)
    for apart in (True, False):
        assert drain_defer_seconds(settings, apart=apart) == configured


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_INGEST_DRAIN_DEFER_SECONDS", "0")
    monkeypatch.setenv("ADAPTER_DATABASE_URL", "sqlite:///./adapter.db")
    assert drain_defer_seconds(Settings(), apart=True) == 0.0
    monkeypatch.delenv("ADAPTER_INGEST_DRAIN_DEFER_SECONDS")
    assert drain_defer_seconds(Settings(), apart=True) == DEFER_SECONDS
