"""A PostgreSQL schema of one benchmark run: made at the start, dropped at the end (also when
the run fails), so runs never see each other's tables or leave any behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Schema:
    name: str
    libpq_url: str  # for psycopg.connect (no SQLAlchemy driver name)
    url: str  # a SQLAlchemy URL whose connections work in the schema

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        """A psycopg connection working in the schema."""
        return psycopg.connect(self.libpq_url, options=f"-csearch_path={self.name}", **kwargs)


@contextmanager
def scratch_schema(url: str, prefix: str) -> Iterator[Schema]:
    """``url``: a PostgreSQL URL, with or without a SQLAlchemy driver (``+psycopg``)."""
    parsed = make_url(url)
    libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine_url = parsed.set(drivername="postgresql+psycopg").update_query_dict(
        {"options": f"-csearch_path={name}"}
    )
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield Schema(name, libpq, engine_url.render_as_string(hide_password=False))
        finally:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')
