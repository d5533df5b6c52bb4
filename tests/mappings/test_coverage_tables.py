"""The generated coverage tables of the docs (HL7 v2 message types x fields read in
docs/adt-and-orders.md, WS/T 500 documents x sections in docs/cda-mappings.md) are what
scripts/coverage_tables.py measures on the golden cases with today's mappings."""

from __future__ import annotations

import importlib.util

from tests.mappings.conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location(
        "coverage_tables", ROOT / "scripts" / "coverage_tables.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_docs_tables_are_current(translator) -> None:
    script = _script()
    for path, (marks, made) in script.tables(translator).items():
        doc = path.read_text(encoding="utf-8")
        assert script.block(doc, marks) == made, (
            f"{path.name}: a coverage table is stale: run scripts/coverage_tables.py --write"
        )


def test_every_message_type_of_the_goldens_has_a_column(translator) -> None:
    cells, counts = _script().measure_v2(translator)
    wanted = {"ORU^R01", "OUL^R21", "OUL^R22", "OUL^R24", "ORM^O01", "OML^O21", "REF^I12"}
    wanted |= {f"ADT^{e}" for e in ("A01", "A02", "A03", "A04", "A08", "A11", "A13", "A40")}
    assert wanted <= set(counts)
    # the observation value is read wherever a golden message fills it
    assert {cells[t]["OBX-5"] for t in cells if "OBX-5" in cells[t]} == {"R"}
