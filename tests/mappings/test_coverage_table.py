"""The per-document-type coverage table in docs/cda-mappings.md (section 10) is what
scripts/wst500_coverage.py measures on the golden fixtures today, and no data element of a
golden WS/T 500 document with a narrative is lost (carried into FHIR: 100 %)."""

from __future__ import annotations

import importlib.util

from tests.mappings.conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location(
        "wst500_coverage", ROOT / "scripts" / "wst500_coverage.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_docs_table_is_current(translator) -> None:
    script = _script()
    totals = script.measure(translator)
    doc = (ROOT / "docs" / "cda-mappings.md").read_text(encoding="utf-8")
    assert script.current_block(doc) == script.table(totals), (
        "docs/cda-mappings.md section 10 is stale: run scripts/wst500_coverage.py --write"
    )
    for code in ("C0001", "C0004", "C0034", "C0049", "C0053"):
        assert totals[code]["carried"] == totals[code]["elements"], code
