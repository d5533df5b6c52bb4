"""The translator of tests/mappings (the example consortium's pipeline, no database)."""

from tests.mappings.conftest import translator  # noqa: F401  (the fixture, shared)
