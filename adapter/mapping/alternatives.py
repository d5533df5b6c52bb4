"""``first()``'s alternatives not taken, for formats whose reads are cheap to repeat."""

from __future__ import annotations

from typing import Any


def read_alternatives_by_peek(source: Any, paths: Any, scope: Any, chosen: str) -> None:
    """``SourceAdapter.read_alternatives`` for CSV and JSON (adapter.mapping.evaluation):
    each path peeked, and read (``resolve``) when its text is empty or ``chosen``; a path
    holding another value is left unread (decision 0144)."""
    for path in paths:
        other = source.peek(path, scope).strip()
        if not other or other == chosen:
            source.resolve(path, scope)
