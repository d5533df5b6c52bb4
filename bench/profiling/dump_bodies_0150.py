"""Decision 0150: the stored bytes of every resource body and content hash, to compare trees.

``dump_store.py`` masks the packed bodies and content hashes (a Provenance's hold the run's
clock); here they are written as stored (hex), those of the Provenance rows (the run's
clock in ``recorded``) left out. Run in each worktree (its own .venv), then ``cmp``:

    .venv/bin/python bench/profiling/dump_bodies_0150.py [COPIES] OUT
    UNIQUE=1 ...; ADAPTER_AB_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
import dump_store

ab = dump_store.ab

from sqlalchemy import text  # noqa: E402

_RAW = text(
    "SELECT resource_type, id, version_id, content_hash, body FROM resource"
    " WHERE resource_type != 'Provenance'"
)


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 2 else 2
    out = sys.argv[-1]

    def read(engine: Any) -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(_RAW).all()

    _, rows = dump_store.ingested(copies, read)
    lines = sorted(
        f"{t} {ab._r(i)} {v} {bytes(h).hex()} {bytes(b).hex()}" for t, i, v, h, b in rows
    )
    Path(out).write_text("\n".join(lines) + "\n")
    print(out, len(lines), "rows")


if __name__ == "__main__":
    main()
