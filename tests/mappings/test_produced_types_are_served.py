"""The served-types guard of issue 16, run with the mapping tests too.

``tests/api/test_served_types.py`` fails when a mapping template or golden output has a
resource type the FHIR API does not serve. It failed for Coverage (the HL7 v3 registry's
``hl7v3-coverage.yaml``) from the commit that added it, but whoever adds a mapping runs the
mapping tests (tests/mappings, ``adapter mappings test``), not the API tests, so the type
went in unserved. The same check, here where a new template is tested.
"""

from __future__ import annotations

from tests.api.test_served_types import unserved


def test_every_type_a_mapping_produces_is_served_by_the_api() -> None:
    missing = unserved()
    assert not missing, (
        f"types the mappings produce but the FHIR API does not serve: {missing}; add them to "
        "adapter/fhir/search_params.py (docs/api.md)"
    )
