from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.pipeline import Translator

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def translator() -> Translator:
    """The example consortium's translator (no database)."""
    consortium = load_consortium(FIXTURES / "consortium.yaml")
    translator = Translator(
        consortium,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    translator.load_all_mappings()
    return translator
