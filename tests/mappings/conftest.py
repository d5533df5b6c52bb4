from __future__ import annotations

from pathlib import Path

import pytest

from adapter.consortium import load_consortium
from adapter.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def translator() -> Pipeline:
    """The example consortium's pipeline, used only to translate (no database)."""
    consortium = load_consortium(FIXTURES / "consortium.yaml")
    pipeline = Pipeline(
        consortium,
        None,
        mappings_dir=ROOT / "mappings",  # type: ignore[arg-type]
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    pipeline.load_all_mappings()
    return pipeline
