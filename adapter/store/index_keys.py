"""Bounded keys for the text columns of ``search_index`` (decision 0012).

A btree index row on PostgreSQL must fit in about 2.7 KB, so an indexed column cannot hold
an unbounded text: a 900-character Chinese result (2,700 UTF-8 bytes) used to fail the
whole message. Each indexed text column (``system``, ``code``, ``value_norm``,
``reference``) therefore holds a *key* of at most ``KEY_CHARS`` characters, and a value of
``KEY_CHARS`` characters or more is kept whole in the unindexed ``<column>_full`` beside it:

* ``system``, ``code``, ``value_norm``: the key is the first ``KEY_CHARS`` characters, so a
  prefix search (``LIKE 'abc%'``) stays an index range scan;
* ``reference``: the key is the last ``KEY_CHARS`` characters, so an id-only search
  (``LIKE '%/123'``) decides on the key alone.

A key of exactly ``KEY_CHARS`` characters means "cut": the full value is in ``_full``. A
shorter key is the whole value. So the comparisons below touch ``_full`` only when the
searched value is itself that long, and ordinary searches stay index-only.
"""

from __future__ import annotations

from sqlalchemy import Column, ColumnElement, and_, func, or_

KEY_CHARS = 200  # 200 characters are at most 800 UTF-8 bytes; two per token row: 1.6 KB
_ESCAPE = "\\"


def head_key(text: str | None) -> tuple[str | None, str | None]:
    """(key, full) for a column keyed by its beginning: full is None for a short value."""
    if text is None or len(text) < KEY_CHARS:
        return text, None
    return text[:KEY_CHARS], text


def tail_key(text: str | None) -> tuple[str | None, str | None]:
    """(key, full) for a column keyed by its end (references)."""
    if text is None or len(text) < KEY_CHARS:
        return text, None
    return text[-KEY_CHARS:], text


def equals(key: Column[str], full: Column[str], value: str) -> ColumnElement[bool]:
    """``column = value`` for a column keyed by its beginning."""
    if len(value) < KEY_CHARS:
        return key == value  # a cut key has KEY_CHARS characters: it cannot be equal
    return and_(key == value[:KEY_CHARS], full == value)


def equals_tail(key: Column[str], full: Column[str], value: str) -> ColumnElement[bool]:
    """``column = value`` for a column keyed by its end."""
    if len(value) < KEY_CHARS:
        return key == value
    return and_(key == value[-KEY_CHARS:], full == value)


def starts_with(key: Column[str], full: Column[str], prefix: str) -> ColumnElement[bool]:
    """``column LIKE 'prefix%'``: the key has the first KEY_CHARS characters of the value,
    so for a prefix no longer than that the key alone decides."""
    if len(prefix) <= KEY_CHARS:
        return key.like(like_escape(prefix) + "%", escape=_ESCAPE)
    return and_(key == prefix[:KEY_CHARS], full.like(like_escape(prefix) + "%", escape=_ESCAPE))


def ends_with(key: Column[str], full: Column[str], suffix: str) -> ColumnElement[bool]:
    """``column LIKE '%suffix'`` for a column keyed by its end: the key has the last
    KEY_CHARS characters, so for a suffix no longer than that the key alone decides."""
    if len(suffix) <= KEY_CHARS:
        return key.like("%" + like_escape(suffix), escape=_ESCAPE)
    return and_(key == suffix[-KEY_CHARS:], full.like("%" + like_escape(suffix), escape=_ESCAPE))


def contains(key: Column[str], full: Column[str], part: str) -> ColumnElement[bool]:
    """``column LIKE '%part%'``: a cut key that contains it means the value does too; the
    other long values are read from ``_full``."""
    pattern = "%" + like_escape(part) + "%"
    return or_(
        key.like(pattern, escape=_ESCAPE),
        and_(func.length(key) == KEY_CHARS, full.like(pattern, escape=_ESCAPE)),
    )


def like_escape(text: str) -> str:
    return (
        text.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")
    )
