"""``Prefer: respond-async`` (RFC 7240) among a header's preferences (adapter/api/ingest.py)."""

from __future__ import annotations

import pytest

from adapter.api.ingest import prefers_async


@pytest.mark.parametrize(
    ("header", "asked"),
    [
        ("respond-async", True),
        ("Respond-Async", True),
        ("return=minimal, respond-async", True),
        ("respond-async; wait=10", True),
        ("respond-async, wait=10", True),
        (None, False),
        ("", False),
        ("return=representation", False),
        ("respond-asynchronously", False),
        ("wait=respond-async", False),
    ],
)
def test_respond_async_is_recognised_among_preferences(header: str | None, asked: bool) -> None:
    assert prefers_async(header) is asked
