"""Decision 0112: print the Python source the mapping engine generates for a mapping set
(adapter/mapping/closures.py), for reading while debugging a mapping.

    .venv/bin/python bench/profiling/dump_generated_0112.py [FOLDER ...]   # default yunyi-lis

Every function the loader compiled (expressions, ``first()``, dict and list templates,
resource id parts) is printed once per distinct source. The sources hold generated names
only (``a0``, ``v1`` ...): the values they stand for (keys, literals, compiled paths,
functions) are bound in each function's namespace, never written into the source.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from adapter.mapping import closures
from adapter.mapping.loader import load_mapping_set


def main() -> None:
    folders = sys.argv[1:] or ["yunyi-lis"]
    for folder in folders:
        load_mapping_set(Path.cwd() / "mappings", folder)
    for number, source in enumerate(closures._CODE, 1):
        print(f"# --- {number}")
        print(source.rstrip())
    print(f"# {len(closures._CODE)} distinct sources for {', '.join(folders)}")


if __name__ == "__main__":
    main()
