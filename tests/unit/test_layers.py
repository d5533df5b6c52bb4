"""Layering of adapter/, checked by walking every module's imports (stdlib ast).

Inbound drivers feed the pipeline; the delivery worker sends through outbound transports;
never the other way round. The outbox and delivery tables are touched only by their
repository (adapter.store.outbox). ``python tests/unit/test_layers.py [root]`` prints the
figures of docs/decisions (largest modules, outbox-table importers, violations).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# who must not import whom (prefixes of dotted module names)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "adapter.outbound": (
        "adapter.inbound",
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    "adapter.inbound": (
        "adapter.outbound",
        "adapter.delivery",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    "adapter.connectors": (
        "adapter.inbound",
        "adapter.outbound",
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    "adapter.pipeline": (
        "adapter.inbound",
        "adapter.outbound",
        "adapter.delivery",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    "adapter.delivery": (
        "adapter.inbound",
        "adapter.pipeline",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
    ),
    "adapter.store": (
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.routing",
        "adapter.audit",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    "adapter.routing": (
        "adapter.store",
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
    ),
    "adapter.audit": (
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
    ),
    # the index (identity/index/, persons.py) keeps its rows in the store; the rest of
    # identity (IDs, names, rules, the matcher) imports no store: see IDENTITY_PURE
    "adapter.identity": (
        "adapter.routing",
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
    ),
    "adapter.consortium": ("adapter.routing",),  # the consortium file is data only
    **{
        pure: ("adapter.store", "adapter.identity.index", "adapter.identity.persons")
        for pure in (
            "adapter.identity.national_id",
            "adapter.identity.names",
            "adapter.identity.rules",
            "adapter.identity.features",
            "adapter.identity.matcher",
        )
    },
    "adapter.recognition": (
        "adapter.pipeline",
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    # the referral loop: its state machine and table are pure; apply.py and messages.py use
    # the store (messages.py is the pipeline's step, typed on its Work only)
    "adapter.referral": (
        "adapter.delivery",
        "adapter.inbound",
        "adapter.outbound",
        "adapter.api",
        "adapter.commands",
        "adapter.cli",
        "adapter.runtime",
    ),
    **{
        pure: ("adapter.store", "adapter.pipeline", "adapter.identity", "adapter.routing")
        for pure in ("adapter.referral.machine", "adapter.referral.rules")
    },
}

OUTBOX_TABLES = {"Outbox", "OutboxDestination", "DeliveryAttempt", "DeliveryDestination"}
OUTBOX_OWNERS = ("adapter.store.outbox", "adapter.store.models", "adapter.store.migrations")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> list[tuple[str, set[str]]]:
    """(imported module, names taken from it) for every import in the file, wherever it is
    (module level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, set()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, target] if target else base)
            names = {alias.name for alias in node.names}
            found.append((target, names))
            # "from adapter import routing" imports the module adapter.routing
            found.extend((f"{target}.{n}", set()) for n in names)
    return found


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / "adapter").rglob("*.py"))}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    known = modules(root)
    for name, path in known.items():
        rules = [bad for layer, bad in FORBIDDEN.items() if _under(name, layer)]
        for target, _names in imports_of(path, name):
            for bad in (b for rule in rules for b in rule):
                if _under(target, bad) and target in known:
                    found.append(f"{name} imports {target}")
    return sorted(set(found))


def outbox_table_importers(root: Path = ROOT) -> list[str]:
    """Modules outside the repository that import the outbox or delivery tables."""
    found = []
    for name, path in modules(root).items():
        if any(_under(name, owner) for owner in OUTBOX_OWNERS):
            continue
        if any(names & OUTBOX_TABLES for _, names in imports_of(path, name)):
            found.append(name)
    return found


def largest_modules(root: Path = ROOT, over: int = 400) -> list[tuple[int, str]]:
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), n) for n, p in modules(root).items()]
    return sorted((s for s in sizes if s[0] > over), reverse=True)


def test_no_import_against_the_layers():
    assert violations() == []


def test_inbound_drivers_hand_the_pipeline_a_receipt():
    """The allowed direction is used: inbound depends on the pipeline (its Receipt), while
    outbound depends on neither inbound nor the pipeline (checked above)."""
    known = modules(ROOT)
    uses = {
        name
        for name, path in known.items()
        if _under(name, "adapter.inbound")
        for target, _ in imports_of(path, name)
        if _under(target, "adapter.pipeline.receipt")
    }
    assert {"adapter.inbound.mllp", "adapter.inbound.poller"} <= uses
    assert "adapter.pipeline.receipt" in known


def test_only_the_outbox_repository_touches_the_delivery_tables():
    assert outbox_table_importers() == []


def test_the_walker_sees_a_violation(tmp_path):
    """The check can fail: an outbound module importing an inbound one is reported."""
    for package in ("adapter", "adapter/outbound", "adapter/inbound"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "adapter/inbound/listener.py").write_text("X = 1\n")
    (tmp_path / "adapter/outbound/sender.py").write_text(
        "def f():\n    from adapter.inbound.listener import X\n    return X\n"
    )
    (tmp_path / "adapter/outbound/other.py").write_text("from ..inbound import listener\n")
    assert violations(tmp_path) == [
        "adapter.outbound.other imports adapter.inbound",
        "adapter.outbound.other imports adapter.inbound.listener",
        "adapter.outbound.sender imports adapter.inbound.listener",
    ]


if __name__ == "__main__":  # the figures of the decision record
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    print("modules over 400 lines:")
    for size, name in largest_modules(root):
        print(f"  {size:5}  {name}")
    importers = outbox_table_importers(root)
    print(f"modules importing the outbox/delivery tables outside the repository: {len(importers)}")
    for name in importers:
        print(f"  {name}")
    found = violations(root)
    print(f"import-direction violations: {len(found)}")
    for line in found:
        print(f"  {line}")
