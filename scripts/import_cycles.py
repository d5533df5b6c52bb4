"""Import cycles among a package's modules, found by reading the source (stdlib ``ast``).

    .venv/bin/python scripts/import_cycles.py [package folder, default: adapter] [--only PREFIX]

Every import counts, wherever it is written: at the top, inside a function (a "lazy" import
hides a cycle, it does not remove it) and under ``if TYPE_CHECKING:`` (a type that needs the
other module is a dependency on it). ``from a.b import c`` depends on ``a.b.c`` when that is a
module, else on ``a.b``. A cycle is a strongly connected group of two or more modules (or a
module importing itself); the script prints each group and the count, and exits 1 when there
is one (tests/unit/test_import_cycles.py keeps adapter/mapping free of them).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    """``adapter.mapping.loader`` -> its file, for every module of the package at ``root``."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            # ``from a import b``: the submodule a.b if there is one, else a itself
            targets = [t for t in targets[:-1] if t in modules] or [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a non-module c
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def import_graph(root: Path, only: str = "") -> dict[str, set[str]]:
    """Module -> modules it imports, restricted to names starting with ``only``."""
    modules = module_names(root)
    graph = {
        name: {t for t in imports_of(name, path, modules) if t.startswith(only)}
        for name, path in modules.items()
        if name.startswith(only)
    }
    return graph


def main(argv: list[str]) -> int:
    args = list(argv)
    only = ""
    if "--only" in args:
        position = args.index("--only")
        only = args[position + 1]
        del args[position : position + 2]
    root = Path(args[0] if args else "adapter")
    found = cycles(import_graph(root, only))
    for group in found:
        print("cycle: " + " <-> ".join(group))
    print(f"{len(found)} import cycle(s) among {root}{' (' + only + ')' if only else ''} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
