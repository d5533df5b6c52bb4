"""FHIR R4 search parameters as data: resource type -> name -> (type, element paths).

The store derives its index rows from this table when a resource is written, the API
parses searches with it and the CapabilityStatement lists exactly what is here. Adding a
search parameter is one line in ``_TABLE``.

Paths are dotted element names inside the resource dict; lists are walked. A choice
element ``effective[x]`` is written as its concrete names (``effectiveDateTime``,
``effectivePeriod``). ``name[key=value]`` keeps only the elements whose ``key`` is
``value`` (FHIRPath ``where(system='phone')``). ``to=`` limits a reference parameter to
target types (FHIRPath ``where(resolve() is Patient)``); without it any type matches.

Names, types and expressions follow the FHIR R4 (4.0.1) search parameter registry.

Why one module of about 440 lines: most of it is the ``_TABLE`` data (one line per search
parameter); splitting the table by resource type would scatter what the CapabilityStatement
and the store must agree on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

ParamType = Literal["token", "string", "date", "reference", "quantity", "uri"]


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # reference parameters: allowed target types, () = any
    # reference parameters whose R4 expression is ``.where(resolve() is <Type>)``: only
    # references to ``targets`` count; the others select every reference (display-only too)
    narrow: bool = False
    # "_id" and "_lastUpdated" are answered from resource columns, not from index rows
    column: str | None = None
    documentation: str = ""
    # the parameters whose index rows hold this one's values (set by ``_build``, decision
    # 0042): () means its own rows only. ``combo-code`` has none of its own (it is ``code``
    # and ``component-code``); ``subject`` keeps only the values ``patient`` does not have
    # (its rows are ``subject`` and ``patient``); ``telecom`` those of no ``phone``/``email``
    rows_of: tuple[str, ...] = ()

    @property
    def row_params(self) -> tuple[str, ...]:
        """The ``search_index.param`` names whose rows are this parameter's values."""
        return self.rows_of or (self.name,)


@dataclass(frozen=True, slots=True)
class ResourceSearch:
    type: str
    params: dict[str, SearchParam]
    # parameters whose Patient reference says which patient the resource is about
    patient_params: tuple[str, ...] = field(default=())


def token(name: str, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, "token", paths, documentation=doc)


def string(name: str, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, "string", paths, documentation=doc)


def date(name: str, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, "date", paths, documentation=doc)


def uri(name: str, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, "uri", paths, documentation=doc)


def quantity(name: str, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, "quantity", paths, documentation=doc)


def ref(name: str, *paths: str, to: str = "", doc: str = "", narrow: bool = False) -> SearchParam:
    targets = tuple(t.strip() for t in to.split(",") if t.strip())
    # every "patient" parameter is R4's ``<path>.where(resolve() is Patient)``
    narrow = narrow or name == "patient"
    return SearchParam(name, "reference", paths, targets=targets, narrow=narrow, documentation=doc)


COMMON: tuple[SearchParam, ...] = (
    SearchParam("_id", "token", ("id",), column="id", documentation="Logical id"),
    SearchParam(
        "_lastUpdated",
        "date",
        ("meta.lastUpdated",),
        column="last_updated",
        documentation="When the adapter last changed the resource",
    ),
    SearchParam("_tag", "token", ("meta.tag",), documentation="Tags in meta.tag"),
    SearchParam("_profile", "uri", ("meta.profile",), documentation="Profiles in meta.profile"),
    SearchParam(
        "_security", "token", ("meta.security",), documentation="Security labels in meta.security"
    ),
    SearchParam(
        "_source",
        "uri",
        (),
        column="message_id",
        documentation="The id of the inbound message the current version came from "
        "(as in /messages/{id}); also urn:uuid:<id>",
    ),
)

_HUMAN_NAME = "name"
_PATIENT = "Patient"
_SUBJECT_TARGETS = "Patient,Group,Device,Location"
_AGENTS = "Practitioner,PractitionerRole,Organization,Patient,RelatedPerson,Device"

_TABLE: dict[str, tuple[SearchParam, ...]] = {
    "Patient": (
        token("identifier", "identifier"),
        token("active", "active"),
        string("name", _HUMAN_NAME, doc="Any part of the name (family, given, text ...)"),
        string("family", "name.family"),
        string("given", "name.given"),
        date("birthdate", "birthDate"),
        date("death-date", "deceasedDateTime"),
        token("gender", "gender"),
        token("telecom", "telecom"),
        token("phone", "telecom[system=phone]"),
        token("email", "telecom[system=email]"),
        string("address", "address"),
        string("address-city", "address.city"),
        string("address-state", "address.state"),
        string("address-postalcode", "address.postalCode"),
        string("address-country", "address.country"),
        token("language", "communication.language"),
        ref(
            "general-practitioner",
            "generalPractitioner",
            to="Organization,Practitioner,PractitionerRole",
        ),
        ref("organization", "managingOrganization", to="Organization"),
        ref("link", "link.other", to="Patient,RelatedPerson"),
    ),
    "Practitioner": (
        token("identifier", "identifier"),
        token("active", "active"),
        string("name", _HUMAN_NAME),
        string("family", "name.family"),
        string("given", "name.given"),
        token("gender", "gender"),
        token("telecom", "telecom"),
        token("phone", "telecom[system=phone]"),
        token("email", "telecom[system=email]"),
        string("address", "address"),
        string("address-city", "address.city"),
        token("communication", "communication"),
    ),
    "PractitionerRole": (
        token("identifier", "identifier"),
        token("active", "active"),
        ref("practitioner", "practitioner", to="Practitioner"),
        ref("organization", "organization", to="Organization"),
        token("role", "code"),
        token("specialty", "specialty"),
        ref("location", "location", to="Location"),
        ref("service", "healthcareService", to="HealthcareService"),
        token("telecom", "telecom"),
        token("phone", "telecom[system=phone]"),
        token("email", "telecom[system=email]"),
        date("date", "period"),
    ),
    "Organization": (
        token("identifier", "identifier"),
        token("active", "active"),
        string("name", "name", "alias"),
        token("type", "type"),
        ref("partof", "partOf", to="Organization"),
        string("address", "address"),
        string("address-city", "address.city"),
        string("address-state", "address.state"),
    ),
    "Encounter": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("class", "class"),
        token("type", "type"),
        ref("subject", "subject", to="Patient,Group"),
        ref("patient", "subject", to=_PATIENT),
        date("date", "period"),
        ref(
            "participant",
            "participant.individual",
            to="Practitioner,PractitionerRole,RelatedPerson",
        ),
        ref("practitioner", "participant.individual", to="Practitioner", narrow=True),
        token("participant-type", "participant.type"),
        ref("service-provider", "serviceProvider", to="Organization"),
        token("reason-code", "reasonCode"),
        ref("based-on", "basedOn", to="ServiceRequest"),
        ref("part-of", "partOf", to="Encounter"),
        ref("location", "location.location", to="Location"),
        ref("diagnosis", "diagnosis.condition", to="Condition,Procedure"),
        ref("episode-of-care", "episodeOfCare", to="EpisodeOfCare"),
        ref("appointment", "appointment", to="Appointment"),
    ),
    "ServiceRequest": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("intent", "intent"),
        token("priority", "priority"),
        token("code", "code"),
        token("category", "category"),
        ref("subject", "subject", to=_SUBJECT_TARGETS),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        ref("requester", "requester", to=_AGENTS),
        ref("performer", "performer", to=_AGENTS + ",CareTeam,HealthcareService"),
        token("performer-type", "performerType"),
        date("authored", "authoredOn"),
        date("occurrence", "occurrenceDateTime", "occurrencePeriod"),
        ref("based-on", "basedOn", to="CarePlan,ServiceRequest,MedicationRequest"),
        ref("replaces", "replaces", to="ServiceRequest"),
        token("requisition", "requisition"),
        ref("specimen", "specimen", to="Specimen"),
        token("body-site", "bodySite"),
    ),
    "Task": (
        token("identifier", "identifier"),
        token("group-identifier", "groupIdentifier"),
        token("status", "status"),
        token("business-status", "businessStatus"),
        token("intent", "intent"),
        token("priority", "priority"),
        token("code", "code"),
        ref("subject", "for"),
        ref("patient", "for", to=_PATIENT),
        ref("focus", "focus"),
        ref("based-on", "basedOn"),
        ref("part-of", "partOf", to="Task"),
        ref("encounter", "encounter", to="Encounter"),
        ref("requester", "requester", to=_AGENTS),
        ref("owner", "owner", to=_AGENTS + ",CareTeam,HealthcareService"),
        token("performer", "performerType"),
        date("authored-on", "authoredOn"),
        date("modified", "lastModified"),
        date("period", "executionPeriod"),
    ),
    "AllergyIntolerance": (
        token("identifier", "identifier"),
        token("clinical-status", "clinicalStatus"),
        token("verification-status", "verificationStatus"),
        token("type", "type"),
        token("category", "category"),
        token("criticality", "criticality"),
        token("code", "code", "reaction.substance"),
        token("manifestation", "reaction.manifestation"),
        token("severity", "reaction.severity"),
        token("route", "reaction.exposureRoute"),
        ref("patient", "patient", to=_PATIENT),
        ref("recorder", "recorder", to="Practitioner,PractitionerRole,Patient,RelatedPerson"),
        ref("asserter", "asserter", to="Practitioner,PractitionerRole,Patient,RelatedPerson"),
        date("date", "recordedDate"),
        date("last-date", "lastOccurrence"),
        date("onset", "reaction.onset"),
    ),
    "Procedure": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("category", "category"),
        token("code", "code"),
        token("reason-code", "reasonCode"),
        ref("subject", "subject", to="Patient,Group"),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        ref("performer", "performer.actor", to=_AGENTS),
        ref("location", "location", to="Location"),
        ref("based-on", "basedOn", to="CarePlan,ServiceRequest"),
        ref("part-of", "partOf", to="Procedure,Observation,MedicationAdministration"),
        ref(
            "reason-reference",
            "reasonReference",
            to="Condition,Observation,Procedure,DiagnosticReport,DocumentReference",
        ),
        date("date", "performedDateTime", "performedPeriod"),
    ),
    "Condition": (
        token("identifier", "identifier"),
        token("clinical-status", "clinicalStatus"),
        token("verification-status", "verificationStatus"),
        token("category", "category"),
        token("code", "code"),
        token("severity", "severity"),
        token("body-site", "bodySite"),
        token("evidence", "evidence.code"),
        ref("subject", "subject", to="Patient,Group"),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        ref("asserter", "asserter", to="Practitioner,PractitionerRole,Patient,RelatedPerson"),
        date("onset-date", "onsetDateTime", "onsetPeriod"),
        date("abatement-date", "abatementDateTime", "abatementPeriod"),
        date("recorded-date", "recordedDate"),
    ),
    "DiagnosticReport": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("category", "category"),
        token("code", "code"),
        token("conclusion", "conclusionCode"),
        ref("subject", "subject", to=_SUBJECT_TARGETS),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        date("date", "effectiveDateTime", "effectivePeriod"),
        date("issued", "issued"),
        ref("performer", "performer", to="Practitioner,PractitionerRole,Organization,CareTeam"),
        ref(
            "results-interpreter",
            "resultsInterpreter",
            to="Practitioner,PractitionerRole,Organization,CareTeam",
        ),
        ref("result", "result", to="Observation"),
        ref("specimen", "specimen", to="Specimen"),
        ref(
            "based-on",
            "basedOn",
            to="CarePlan,ImmunizationRecommendation,MedicationRequest,NutritionOrder,"
            "ServiceRequest",
        ),
        ref("media", "media.link", to="Media"),
    ),
    "Observation": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("category", "category"),
        token("code", "code"),
        token("combo-code", "code", "component.code"),
        token("component-code", "component.code"),
        token("value-concept", "valueCodeableConcept"),
        quantity("value-quantity", "valueQuantity"),
        string("value-string", "valueString", "valueCodeableConcept.text"),
        date("value-date", "valueDateTime", "valuePeriod"),
        token("method", "method"),
        token("data-absent-reason", "dataAbsentReason"),
        ref("subject", "subject", to=_SUBJECT_TARGETS),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        date("date", "effectiveDateTime", "effectivePeriod", "effectiveInstant"),
        ref("performer", "performer", to=_AGENTS.replace(",Device", "") + ",CareTeam"),
        ref(
            "based-on",
            "basedOn",
            to="CarePlan,DeviceRequest,ImmunizationRecommendation,MedicationRequest,"
            "NutritionOrder,ServiceRequest",
        ),
        ref("part-of", "partOf"),
        ref("specimen", "specimen", to="Specimen"),
        ref("device", "device", to="Device,DeviceMetric"),
        ref("focus", "focus"),
        ref("has-member", "hasMember", to="Observation,QuestionnaireResponse,MolecularSequence"),
        ref("derived-from", "derivedFrom"),
    ),
    "Specimen": (
        token("identifier", "identifier"),
        token("accession", "accessionIdentifier"),
        token("type", "type"),
        token("status", "status"),
        token("bodysite", "collection.bodySite"),
        token("container-id", "container.identifier"),
        ref("subject", "subject", to="Patient,Group,Device,Substance,Location"),
        ref("patient", "subject", to=_PATIENT),
        date("collected", "collection.collectedDateTime", "collection.collectedPeriod"),
        ref("collector", "collection.collector", to="Practitioner,PractitionerRole"),
        ref("parent", "parent", to="Specimen"),
    ),
    "Bundle": (
        token("identifier", "identifier"),
        token("type", "type"),
        date("timestamp", "timestamp"),
    ),
    "Composition": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("type", "type"),
        token("category", "category"),
        token("confidentiality", "confidentiality"),
        token("section", "section.code"),
        token("context", "event.code"),
        ref("subject", "subject"),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        date("date", "date"),
        date("period", "event.period"),
        ref("author", "author", to=_AGENTS),
        ref(
            "attester",
            "attester.party",
            to="Patient,RelatedPerson,Practitioner,PractitionerRole,Organization",
        ),
        ref("entry", "section.entry"),
        string("title", "title"),
    ),
    "DocumentReference": (
        token("identifier", "masterIdentifier", "identifier"),
        token("status", "status"),
        token("doc-status", "docStatus"),
        token("type", "type"),
        token("category", "category"),
        token("security-label", "securityLabel"),
        token("contenttype", "content.attachment.contentType"),
        token("format", "content.format"),
        token("language", "content.attachment.language"),
        token("event", "context.event"),
        token("facility", "context.facilityType"),
        token("setting", "context.practiceSetting"),
        ref("subject", "subject", to="Patient,Practitioner,Group,Device"),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "context.encounter", to="Encounter,EpisodeOfCare"),
        date("date", "date"),
        date("period", "context.period"),
        ref("author", "author", to=_AGENTS),
        ref("authenticator", "authenticator", to="Practitioner,PractitionerRole,Organization"),
        ref("custodian", "custodian", to="Organization"),
        ref("related", "context.related"),
        ref("relatesto", "relatesTo.target", to="DocumentReference"),
        string("description", "description"),
        uri("location", "content.attachment.url"),
    ),
    "MedicationRequest": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("intent", "intent"),
        token("priority", "priority"),
        token("category", "category"),
        token("code", "medicationCodeableConcept"),
        ref("medication", "medicationReference", to="Medication"),
        ref("subject", "subject", to="Patient,Group"),
        ref("patient", "subject", to=_PATIENT),
        ref("encounter", "encounter", to="Encounter"),
        ref("requester", "requester", to=_AGENTS),
        ref("intended-performer", "performer", to=_AGENTS + ",CareTeam"),
        token("intended-performertype", "performerType"),
        date("authoredon", "authoredOn"),
        date("date", "dosageInstruction.timing.event"),
    ),
    "MedicationStatement": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("category", "category"),
        token("code", "medicationCodeableConcept"),
        ref("medication", "medicationReference", to="Medication"),
        ref("subject", "subject", to="Patient,Group"),
        ref("patient", "subject", to=_PATIENT),
        ref("context", "context", to="Encounter,EpisodeOfCare"),
        date("effective", "effectiveDateTime", "effectivePeriod"),
        ref("source", "informationSource", to=_AGENTS.replace(",Device", "")),
        ref(
            "part-of",
            "partOf",
            to="MedicationAdministration,MedicationDispense,MedicationStatement,Procedure,"
            "Observation",
        ),
    ),
    "Provenance": (
        ref("target", "target"),
        ref("patient", "target", to=_PATIENT),
        date("recorded", "recorded"),
        date("when", "occurredDateTime", "occurredPeriod"),
        ref("agent", "agent.who", to=_AGENTS),
        token("agent-role", "agent.role"),
        token("agent-type", "agent.type"),
        ref("entity", "entity.what"),
        ref("location", "location", to="Location"),
        token("signature-type", "signature.type"),
    ),
    "CodeSystem": (
        uri("url", "url"),
        uri("system", "url"),
        token("identifier", "identifier"),
        token("version", "version"),
        string("name", "name"),
        string("title", "title"),
        token("status", "status"),
        string("publisher", "publisher"),
        string("description", "description"),
        token("code", "concept.code"),
        token("content-mode", "content"),
        token("jurisdiction", "jurisdiction"),
        date("date", "date"),
    ),
    # a person's consent (检查检验结果互认: another facility may be shown the person's
    # results, adapter/recognition/consent.py)
    "Consent": (
        token("identifier", "identifier"),
        token("status", "status"),
        token("scope", "scope"),
        token("category", "category"),
        ref("patient", "patient", to=_PATIENT),
        ref("consentor", "performer", to=_AGENTS.replace(",Device", "")),
        ref("organization", "organization", to="Organization"),
        date("date", "dateTime"),
        date("period", "provision.period"),
        ref("actor", "provision.actor.reference"),
        token("action", "provision.action"),
        token("purpose", "provision.purpose"),
    ),
    # the adapter's own operations ($recognisable ...), published at start-up
    "OperationDefinition": (
        uri("url", "url"),
        token("version", "version"),
        string("name", "name"),
        string("title", "title"),
        token("status", "status"),
        string("publisher", "publisher"),
        string("description", "description"),
        token("jurisdiction", "jurisdiction"),
        date("date", "date"),
        token("code", "code"),
        token("kind", "kind"),
        token("type", "type"),
        token("system", "system"),
        token("instance", "instance"),
    ),
}

# Which reference says whom the resource is about (the Patient compartment key).
_PATIENT_PARAMS: dict[str, tuple[str, ...]] = {
    "Encounter": ("patient",),
    "ServiceRequest": ("patient",),
    "Task": ("patient",),
    "Condition": ("patient",),
    "DiagnosticReport": ("patient",),
    "Observation": ("patient",),
    "Specimen": ("patient",),
    "Composition": ("patient",),
    "DocumentReference": ("patient",),
    "MedicationRequest": ("patient",),
    "MedicationStatement": ("patient",),
    "AllergyIntolerance": ("patient",),
    "Procedure": ("patient",),
    "Provenance": ("patient",),
    "Consent": ("patient",),
}


def _unfiltered(path: str) -> str:
    """The path without ``[key=value]`` filters: ``telecom[system=phone]`` -> ``telecom``."""
    return ".".join(step.partition("[")[0] for step in path.split("."))


def _within(inner: SearchParam, outer: SearchParam) -> bool:
    """Whether every value of ``inner`` is also a value of ``outer`` (the conversion of an
    element does not depend on the parameter): ``inner`` reads the same elements as
    ``outer`` or a filtered part of them (``telecom[system=phone]`` in ``telecom``), and
    ``outer`` keeps every reference where ``inner`` may keep only some (``patient``)."""
    if inner is outer or inner.type != outer.type or inner.column or outer.column:
        return False
    if not inner.paths or outer.narrow or any("[" in path for path in outer.paths):
        return False
    return all(_unfiltered(path) in outer.paths for path in inner.paths)


def _share_rows(by_name: dict[str, SearchParam]) -> dict[str, SearchParam]:
    """A parameter whose values include another's keeps rows only for the values the other
    has not (decision 0042): ``subject`` without the ``patient`` ones, ``combo-code``
    (``code | component.code``) without those of ``code`` and ``component-code``, that is
    none. Its search reads the rows of both (``row_params``). One level only: the inner
    parameters keep all their rows, and an outer one is inside no other."""
    params = [p for p in by_name.values() if not p.column]
    out = dict(by_name)
    for outer in params:
        if any(_within(outer, other) for other in params):
            continue
        inner = [
            p.name for p in params if _within(p, outer) and not any(_within(q, p) for q in params)
        ]
        if inner:
            out[outer.name] = replace(outer, rows_of=(outer.name, *inner))
    return out


def _build() -> dict[str, ResourceSearch]:
    out: dict[str, ResourceSearch] = {}
    for rtype, params in _TABLE.items():
        by_name = {p.name: p for p in COMMON}
        for p in params:
            if p.name in by_name:
                raise ValueError(f"{rtype}: search parameter {p.name} defined twice")
            by_name[p.name] = p
        shared = _share_rows(by_name)
        out[rtype] = ResourceSearch(rtype, shared, _PATIENT_PARAMS.get(rtype, ()))
    return out


RESOURCES: dict[str, ResourceSearch] = _build()
SUPPORTED_TYPES: tuple[str, ...] = tuple(sorted(RESOURCES))


def params_for(resource_type: str) -> dict[str, SearchParam]:
    """The search parameters of a supported type; KeyError for others."""
    return RESOURCES[resource_type].params


def is_supported(resource_type: str) -> bool:
    return resource_type in RESOURCES
