"""No import cycle among the modules of adapter/mapping (scripts/import_cycles.py reads the
imports with the stdlib ast module: top-level, inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _detector() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "import_cycles", ROOT / "scripts/import_cycles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_in_the_mapping_package() -> None:
    detector = _detector()
    graph = detector.import_graph(ROOT / "adapter", "adapter.mapping")
    assert "adapter.mapping.engine" in graph  # the package was read
    assert graph["adapter.mapping.engine"] >= {"adapter.mapping.evaluation"}
    assert detector.cycles(graph) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


def test_the_detector_sees_lazy_type_checking_and_relative_imports(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            # a lazy import inside a function still makes b depend on c
            "b.py": "def f():\n    from pkg.sub import c\n",
            "sub/__init__.py": "",
            # a TYPE_CHECKING import is a dependency too; relative imports resolve
            "sub/c.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from .. import a
                from . import d
            """,
            "sub/d.py": "import os\n",
        },
    )
    detector = _detector()
    graph = detector.import_graph(package)
    assert graph["pkg.sub.c"] == {"pkg.a", "pkg.sub.d"}
    assert detector.cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert detector.main([str(package)]) == 1
    (package / "sub/c.py").write_text("from . import d\n", encoding="utf-8")
    assert detector.cycles(detector.import_graph(package)) == []
