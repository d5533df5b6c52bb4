"""Where each search parameter is defined: the canonical URL the CapabilityStatement names.

Every parameter of ``search_params._TABLE`` is an R4 (4.0.1) one unless it is listed in
``OWN``; the R4 registry gives most parameters the id ``<Type>-<name>`` and a few shared
ones a common id (``clinical-patient`` is the ``patient`` of Observation, Condition ...),
listed in ``_SHARED``. Parameters in ``OWN`` are the adapter's: their definition URL is
under the adapter's canonical base and docs/api.md says what they match.
"""

from __future__ import annotations

R4_BASE = "http://hl7.org/fhir/SearchParameter/"
OWN_BASE = "https://yigongti-fhir-adapter.github.io/fhir/SearchParameter/"

# R4 SearchParameter id -> the types whose parameter of that name it defines
_SHARED: dict[str, tuple[str, ...]] = {
    "clinical-code": (
        "AllergyIntolerance",
        "Condition",
        "DiagnosticReport",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    ),
    "clinical-date": (
        "AllergyIntolerance",
        "Composition",
        "DiagnosticReport",
        "Encounter",
        "Observation",
        "Procedure",
    ),
    "clinical-encounter": (
        "Composition",
        "DiagnosticReport",
        "DocumentReference",
        "Observation",
        "Procedure",
        "ServiceRequest",
    ),
    "clinical-identifier": (
        "AllergyIntolerance",
        "Composition",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    ),
    "clinical-patient": (
        "AllergyIntolerance",
        "Composition",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
    ),
    "clinical-type": ("AllergyIntolerance", "Composition", "DocumentReference", "Encounter"),
    "conformance-date": ("CodeSystem", "OperationDefinition"),
    "conformance-description": ("CodeSystem", "OperationDefinition"),
    "conformance-identifier": ("CodeSystem",),
    "conformance-jurisdiction": ("CodeSystem", "OperationDefinition"),
    "conformance-name": ("CodeSystem", "OperationDefinition"),
    "conformance-publisher": ("CodeSystem", "OperationDefinition"),
    "conformance-status": ("CodeSystem", "OperationDefinition"),
    "conformance-title": ("CodeSystem", "OperationDefinition"),
    "conformance-url": ("CodeSystem", "OperationDefinition"),
    "conformance-version": ("CodeSystem", "OperationDefinition"),
    "individual-address": ("Patient", "Practitioner"),
    "individual-address-city": ("Patient", "Practitioner"),
    "individual-address-country": ("Patient",),
    "individual-address-postalcode": ("Patient",),
    "individual-address-state": ("Patient",),
    "individual-birthdate": ("Patient",),
    "individual-email": ("Patient", "Practitioner", "PractitionerRole"),
    "individual-family": ("Patient", "Practitioner"),
    "individual-gender": ("Patient", "Practitioner"),
    "individual-given": ("Patient", "Practitioner"),
    "individual-phone": ("Patient", "Practitioner", "PractitionerRole"),
    "individual-telecom": ("Patient", "Practitioner", "PractitionerRole"),
    "medications-date": ("MedicationRequest",),
    "medications-encounter": ("MedicationRequest",),
    "medications-medication": ("MedicationRequest", "MedicationStatement"),
    "medications-status": ("MedicationRequest", "MedicationStatement"),
}
# parameters every type has, defined on Resource
_RESOURCE = {
    "_id": "Resource-id",
    "_lastUpdated": "Resource-lastUpdated",
    "_tag": "Resource-tag",
    "_profile": "Resource-profile",
    "_security": "Resource-security",
}
# (type or "*", name): the adapter's own parameters, not in the R4 registry as such
OWN: frozenset[tuple[str, str]] = frozenset(
    {
        ("DocumentReference", "doc-status"),  # R5 has it; R4 does not
        ("*", "_source"),  # the inbound message the resource came from (not meta.source)
    }
)
_BY_TYPE_AND_NAME = {
    (rtype, sp_id.split("-", 1)[1]): sp_id for sp_id, types in _SHARED.items() for rtype in types
}


def definition_url(resource_type: str, name: str) -> str:
    """The canonical URL of the SearchParameter that defines ``name`` on the type."""
    if (resource_type, name) in OWN or ("*", name) in OWN:
        return f"{OWN_BASE}{resource_type}-{name.lstrip('_')}"
    if name in _RESOURCE:
        return R4_BASE + _RESOURCE[name]
    return R4_BASE + _BY_TYPE_AND_NAME.get((resource_type, name), f"{resource_type}-{name}")


def is_own(resource_type: str, name: str) -> bool:
    return (resource_type, name) in OWN or ("*", name) in OWN
