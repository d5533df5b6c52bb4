"""The index's reference texts are normalised once per text (adapter/fhir/index_values.py,
decision 0050 amended 2026-12-05 bulkcpu): the same answers as ``normalize_reference``,
asked twice."""

from __future__ import annotations

from adapter.fhir import index_values
from adapter.fhir.index_values import IndexValue, normalize_reference


def test_references_are_normalised_once_with_the_same_answers() -> None:
    texts = [
        "Patient/p1",
        " Patient/p1 ",
        "http://example.org/fhir/Observation/o-1/_history/2",
        "#contained",
        "",
        "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001",
        "Organization/有效",
    ]
    cached = index_values._normalized_reference
    cached.cache_clear()
    for _ in range(2):
        assert [cached(t) for t in texts] == [normalize_reference(t) for t in texts]
    assert cached.cache_info().hits == len(texts)
    node = {"reference": "http://example.org/fhir/Patient/p1/_history/3"}
    found = index_values._reference("subject", ("Patient",), False, node)
    assert found == IndexValue("subject", "reference", reference="Patient/p1")
