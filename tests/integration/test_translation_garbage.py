"""A translated HL7 v2 message leaves no reference cycles (decision 0100): the engine's view
of it (the nodes its paths read, the groups, a failed UTF-8 decoding's exception) is freed
when the translation returns, not by the cyclic garbage collector, which walked it at each
of its passes meanwhile (about 900 objects a lab message in bulk ingest before)."""

from __future__ import annotations

import gc

from tests.integration.connector_helpers import example_translator
from tests.integration.test_bulk_ingest import _fixtures


def test_translating_lab_messages_leaves_no_cyclic_garbage() -> None:
    translator = example_translator()
    items = _fixtures()
    assert any(not raw.isascii() for raw, _ in items)  # GB18030 / UTF-8 texts among them

    def translate_all(prefix: str) -> list[object]:
        done = []
        for n, (raw, receipt) in enumerate(items):
            facility, source = translator.source(receipt.source_system)
            outcome = translator.translate_for(raw, facility, source, f"{prefix}-{n}")
            assert outcome.resources and not outcome.failed
            done.append(outcome)
        return done

    translate_all("warm")  # first uses fill caches (compiled paths, lru tables)
    gc.collect()
    gc.disable()
    try:
        outcomes = translate_all("counted")
        found = gc.collect()
    finally:
        gc.enable()
    assert len(outcomes) == len(items)
    assert found == 0, f"{found} objects in reference cycles after {len(items)} messages"
