"""SQLite: ``None`` and ``bytes`` parameters bound without the sqlite3 module's failed
adaptation (decision 0140).

Python's sqlite3 binds an int, float, str or bytearray as it is, but asks its adapter
registry about every other value, ``None`` and ``bytes`` included. With no adapter
registered for the type it then looks for ``PrepareProtocol.__adapt__``: the lookup fails
with an AttributeError whose message is formatted and thrown away, about 3,000
instructions a value. A lab message binds ~870 ``None`` (most in its ~80 search index
rows) and ~70 ``bytes``: 11 % of a SQLite bulk's instructions went there. An adapter
registered for the exact type is found at the first look: ``None`` and ``bytes`` are
given back as they are (C functions, no Python frame) and bound as before (NULL, a BLOB).
"""

from __future__ import annotations

import sqlite3
from typing import Any

# each exact type's adapter: the value itself. ``{}.get(None)`` is None; ``bytes(b)`` is
# ``b`` for an exact bytes object (a subclass is not looked up under this key)
_SAME: dict[type, Any] = {type(None): {}.get, bytes: bytes}


def register_identity_adapters() -> None:
    """Register the adapters (process-wide: sqlite3's registry is the module's); an
    adapter some other code registered for one of these types is left in place."""
    for kind, same in _SAME.items():
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, same)
