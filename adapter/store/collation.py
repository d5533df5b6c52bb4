"""Whether the database orders the texts of the store by their bytes (decision 0080, 2nd part).

A sort by a reference may read the targets of key rows in the order of the resource's
primary key ``(resource_type, id)`` instead of their ``Type/id`` text
(adapter/store/search_order.py). The two orders agree when texts compare by their bytes
(code points): a type name is letters only, ``/`` sorts below every letter, so ``A/x``
precedes ``B/y`` exactly when ``(A, x)`` precedes ``(B, y)``. Under a linguistic collation
(``en_US.UTF-8``, ICU) they do not (punctuation is ignored at the first level), and the
sort keeps reading the texts.

SQLite compares with BINARY (no column of these declares another collation). On
PostgreSQL the columns use the database's default collation unless one is given: it is
bytewise for the libc locales ``C`` / ``POSIX`` / ``C.UTF-8`` and the builtin provider
(PostgreSQL 17: ``C``, ``C.UTF-8``), not for any other libc locale nor ICU.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

# the columns whose order the sort by a reference relies on: resource (type, id) and the
# text of a reference row
_COLUMNS = (("resource", "resource_type"), ("resource", "id"), ("search_index", "reference"))
_DEFAULT, _C, _POSIX = 100, 950, 951  # pg_collation oids (fixed in the catalog)


def bytewise(session: Session) -> bool:
    """Whether the store's texts (``_COLUMNS``) are ordered by their bytes."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name == "sqlite":
        return True
    if engine.dialect.name != "postgresql":
        return False
    # a database's collations do not change under a running adapter: read once per engine
    known = _known.get(engine)
    if known is None:
        known = _known[engine] = _postgres_bytewise(session)
    return known


_known: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


def _postgres_bytewise(session: Session) -> bool:
    pairs = ", ".join(f"(to_regclass('{t}'), '{c}')" for t, c in _COLUMNS)
    collations = set(
        session.execute(
            text(
                "SELECT a.attcollation::int FROM pg_attribute a "
                f"WHERE (a.attrelid, a.attname) IN ({pairs})"
            )
        ).scalars()
    )
    if len(collations) == 0 or not collations <= {_DEFAULT, _C, _POSIX}:
        return False
    return _DEFAULT not in collations or _default_bytewise(session)


def _default_bytewise(session: Session) -> bool:
    version = int(session.execute(text("SHOW server_version_num")).scalar_one())
    provider = "datlocprovider" if version >= 150000 else "'c'"
    row = session.execute(
        text(
            f"SELECT {provider}::text, datcollate FROM pg_database "
            "WHERE datname = current_database()"
        )
    ).one()
    provider_name, locale = row
    if provider_name == "b":  # builtin: C and C.UTF-8 both sort by code point
        return True
    return provider_name == "c" and locale.split(".")[0] in ("C", "POSIX")
