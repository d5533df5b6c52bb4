"""Codes labelled with a standard system must look like codes of it: a code labelled LN that
is not LOINC-shaped (digits, hyphen, mod-10 check digit) stays a local code, with a warning,
and never goes out as http://loinc.org."""

from __future__ import annotations

import pytest

from adapter.mapping.functions.codes import loinc_shaped
from adapter.pipeline import Pipeline
from tests.fhir_checks import validate_r4
from tests.mappings.conftest import FIXTURES

CBC = (FIXTURES / "hl7v2" / "oru" / "std-hl7v2" / "cbc-basic.hl7").read_bytes()


@pytest.mark.parametrize(
    "code", ["718-7", "2345-7", "6690-2", "26464-8", "777-3", "1-8", "LA12432-3", "LP7753-9"]
)
def test_real_loinc_codes_are_loinc_shaped(code: str) -> None:
    assert loinc_shaped(code)


@pytest.mark.parametrize("code", ["718-8", "WBC", "7187", "718-", "-7", "718-7a", "12345678-9", ""])
def test_other_codes_are_not(code: str) -> None:
    assert not loinc_shaped(code)


def observation_codings(resources: list[dict], local: str) -> list[dict]:
    [observation] = [
        r
        for r in resources
        if r["resourceType"] == "Observation"
        and any(c.get("code") == local for c in r["code"]["coding"])
    ]
    return observation["code"]["coding"]


def test_a_code_labelled_ln_that_is_not_loinc_stays_local(translator: Pipeline) -> None:
    raw = CBC.replace("WBC^白细胞计数^99QSLIS".encode(), "WBC^白细胞计数^LN".encode())
    outcome = translator.translate(raw, "std-hl7v2")
    assert not outcome.failed, [i.as_dict() for i in outcome.issues]
    codings = observation_codings(outcome.resources, "WBC")
    [wbc] = [c for c in codings if c["code"] == "WBC"]
    assert wbc["system"] != "http://loinc.org"  # the facility's own lab-item system
    [warning] = [i for i in outcome.issues if "is labelled LN" in i.diagnostics]
    assert warning.severity == "warning" and warning.location == "OBX[1]-3[1].1"
    # the rest of the message is translated as before
    assert sum(r["resourceType"] == "Observation" for r in outcome.resources) == 4
    for resource in outcome.resources:
        assert validate_r4(resource) == []


def test_a_loinc_shaped_code_labelled_ln_is_loinc(translator: Pipeline) -> None:
    raw = CBC.replace("WBC^白细胞计数^99QSLIS".encode(), "6690-2^白细胞计数^LN".encode())
    outcome = translator.translate(raw, "std-hl7v2")
    codings = observation_codings(outcome.resources, "6690-2")
    assert {"system": "http://loinc.org", "code": "6690-2", "display": "白细胞计数"} in codings
    assert not [i for i in outcome.issues if "is labelled LN" in i.diagnostics]
