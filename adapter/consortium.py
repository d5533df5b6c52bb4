"""The consortium file: facilities, their source systems, destinations, routes and care.

Loaded once at start-up; any mistake stops the adapter with the file, the key path, the
line and what is wrong. Data only: what the routes mean is decided in adapter.routing.
"""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapter.config_file import first_problem, located, read_config
from adapter.sync.config import SyncConfig, sync_problems

FHIR_ID_PATTERN = r"^[A-Za-z0-9\-\.]{1,64}$"


class Level(IntEnum):
    """Care levels in referral order; up-referral goes from a lower to a higher value."""

    village = 1
    township = 2
    county = 3
    city = 4
    province = 5


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgIdentifier(Strict):
    system: str
    value: str


class SourceSystem(Strict):
    id: str = Field(pattern=FHIR_ID_PATTERN)
    format: Literal["hl7v2", "cda", "xml", "json", "csv"]
    mapping: str = Field(description="Mapping folder under mappings/, overlaid on _shared")
    description: str | None = None
    # connector settings for sources that the adapter polls or listens on (delivery issue)
    connector: dict[str, Any] | None = None
    # when POST /ingest answers: once the document is stored (the default), or on receipt
    # (its raw bytes kept, stored later by the drain: docs/decisions/0063-answer-on-receipt.md)
    answer: Literal["when-stored", "on-receipt"] = "when-stored"


class RetryPolicy(Strict):
    max_attempts: int = Field(10, ge=1)
    max_age_seconds: float = Field(86400.0, gt=0)
    initial_backoff_seconds: float = Field(1.0, gt=0)
    max_backoff_seconds: float = Field(600.0, gt=0)


class Destination(Strict):
    id: str = Field(pattern=FHIR_ID_PATTERN)
    kind: Literal["fhir", "mllp", "file"]
    settings: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    enabled: bool = True


class Facility(Strict):
    id: str = Field(pattern=FHIR_ID_PATTERN)
    name: str
    level: Level
    identifiers: list[OrgIdentifier] = Field(default_factory=list)
    namespace: str = Field(description="URI prefix of this facility's own identifier systems")
    identifier_systems: dict[str, str] = Field(default_factory=dict)
    sources: list[SourceSystem] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)

    @field_validator("level", mode="before")
    @classmethod
    def _level_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return Level[value]
            except KeyError:
                names = ", ".join(level.name for level in Level)
                raise ValueError(f"unknown level {value!r}; one of: {names}") from None
        return value

    def identifier_system(self, kind: str) -> str:
        """System URI for this facility's local identifiers of a kind (patient, lab-report...)."""
        return self.identifier_systems.get(kind) or f"{self.namespace.rstrip('/')}/{kind}"


class Route(Strict):
    """Which destinations receive what: resources produced from ``from_`` facilities.
    Declared here; applied by :func:`adapter.routing.destinations_for`."""

    from_: list[str] = Field(alias="from", default_factory=lambda: ["*"])
    to: list[str]
    resource_types: list[str] = Field(default_factory=lambda: ["*"])


class CareWindows(Strict):
    """How long a care relationship lasts (days)."""

    activity_days: float = Field(365.0, gt=0, description="after the last item sent or ordered")
    referral_after_close_days: float = Field(
        30.0, ge=0, description="after the referral's loop closes"
    )


class CatchUp(Strict):
    """What a facility receives of a person's history, once, when it starts caring."""

    enabled: bool = True
    results_days: float = Field(90.0, ge=0, description="results of the last N days")
    result_types: list[str] = Field(
        default_factory=lambda: ["DiagnosticReport", "Observation", "Specimen"]
    )
    last_discharge_summary: bool = True


class Care(Strict):
    """Care relationships and routing by care (docs/routing.md). Data only: what they mean
    is decided in adapter.routing."""

    # route by care: None = on when the file has no ``routes``, off when it has some (the
    # routes then decide alone, as before); true combines both
    routing: bool | None = None
    windows: CareWindows = Field(default_factory=CareWindows)
    catch_up: CatchUp = Field(default_factory=CatchUp)


class ReferralPath(Strict):
    """One allowed referral path: from a care level to a care level, for one direction as
    the slip states it (any when not given)."""

    from_: Level = Field(alias="from")
    to: Level
    direction: Literal["up", "down"] | None = None

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _level_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return Level[value]
            except KeyError:
                names = ", ".join(level.name for level in Level)
                raise ValueError(f"unknown level {value!r}; one of: {names}") from None
        return value


class Deadlines(Strict):
    """The referral loop's deadlines (docs/referral-loop.md, 时限); the defaults are the
    consortium's rules the issue names. Each is counted from the step before it."""

    accept_emergency_minutes: float = Field(30, gt=0, description="急诊 / 绿色通道: to accept")
    accept_routine_hours: float = Field(24, gt=0, description="routine: to accept")
    arrive_days: float = Field(3, gt=0, description="accepted -> the patient arrives")
    feedback_days: float = Field(
        7, gt=0, description="arrival -> the receiver's diagnosis / summary back (回转)"
    )
    follow_up_days: float = Field(
        5, gt=0, description="discharge -> the sender's follow-up of an up-referred patient"
    )
    down_follow_up_days: list[float] = Field(
        default_factory=lambda: [2, 7, 30],
        description="down-referral -> the primary facility's follow-ups",
    )
    expire_untouched_days: float = Field(
        3, gt=0, description="a Task nobody touched (still requested) is cancelled as 已过期"
    )
    scheduler_interval_minutes: float = Field(
        5, gt=0, le=55, description="how often the scheduler looks (under 1 h)"
    )


class Referrals(Strict):
    """The referral loop (docs/referral-loop.md). ``paths`` not set: up from a lower to a
    higher level, down from a higher to a lower, same level both ways. A slip outside the
    allowed paths is kept and flagged, never dropped."""

    paths: list[ReferralPath] | None = None
    deadlines: Deadlines = Field(default_factory=lambda: Deadlines())
    # facilities of the county (县域内): a receiver not among them makes a referral out of
    # the county; None: every member facility is in the county
    county_facilities: list[str] | None = None


class PatientIndex(Strict):
    """The consortium patient index (docs/patient-index.md): its matching rules file (a path
    relative to the consortium file; the packaged default when absent); whether each
    consortium person is also stored as a FHIR Patient (searchable, versioned; decision
    0023) and which destinations receive those persons (identity changes) through the
    outbox."""

    matching_rules: str | None = None
    publish_persons: bool = False
    deliver_to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _deliver_needs_publish(self) -> PatientIndex:
        if self.deliver_to and not self.publish_persons:
            raise ValueError(
                "deliver_to needs publish_persons: true (persons are delivered as stored)"
            )
        return self


Role = Literal["source", "reader", "operator", "auditor", "admin"]
# a secret named by environment variable, or a hash string of argon2 (argon2-cffi)
SECRET_REF_PATTERN = r"^env:[A-Za-z_][A-Za-z0-9_]{0,127}$"
SECRET_HASH_PATTERN = (
    r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$"
)


FINGERPRINT_PATTERN = r"^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$"


class ClientCertificate(Strict):
    """The TLS client certificate a client presents (mTLS, RFC 8705 ``tls_client_auth``):
    its SHA-256 fingerprint, or its subject as an RFC 4514 string (then the certificate
    must also be issued by the CA of ``ADAPTER_TLS_CLIENT_CA``, which TLS checks)."""

    sha256: str | None = Field(None, pattern=FINGERPRINT_PATTERN)
    subject: str | None = Field(None, min_length=3)

    @model_validator(mode="after")
    def _one(self) -> ClientCertificate:
        if (self.sha256 is None) == (self.subject is None):
            raise ValueError("give exactly one of sha256 (fingerprint) and subject")
        return self


class Client(Strict):
    """A caller of the HTTP API (docs/security.md): what it may do, for which facility,
    and how it proves who it is: a secret, a client certificate (mTLS) or a key pair whose
    public half is listed here (signed JWT client assertions, SMART Backend Services).
    Data only: the checks are in adapter.auth."""

    id: str = Field(pattern=FHIR_ID_PATTERN)
    facility: str
    roles: list[Role] = Field(min_length=1)
    # facility: its own facility's data; consortium: every facility's (operator, admin)
    scope: Literal["facility", "consortium"] = "facility"
    secret: str | None = None
    secret_hash: str | None = None
    certificate: ClientCertificate | None = None
    # public keys of signed client assertions: a JWK Set inline, or a file of one beside
    # the consortium file (read at start-up; adapter.auth.assertions)
    jwks: dict[str, Any] | None = None
    jwks_file: str | None = None
    description: str | None = None

    @field_validator("secret")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SECRET_REF_PATTERN, value):
            raise ValueError(
                "secret must name an environment variable, e.g. env:SHIQIAO_LIS_SECRET "
                "(the secret itself never stands in this file)"
            )
        return value

    @field_validator("secret_hash")
    @classmethod
    def _hash_string(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(SECRET_HASH_PATTERN, value):
            raise ValueError(
                "secret_hash must be an argon2 hash string ($argon2id$v=19$m=...), "
                "as made by adapter auth hash-secret"
            )
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Client:
        if self.secret is not None and self.secret_hash is not None:
            raise ValueError("give exactly one of secret (env:NAME) and secret_hash")
        if self.jwks is not None and self.jwks_file is not None:
            raise ValueError("give jwks or jwks_file, not both")
        if not any((self.secret, self.secret_hash, self.certificate, self.jwks, self.jwks_file)):
            raise ValueError(
                "give exactly one of secret (env:NAME) and secret_hash, or a certificate "
                "(mTLS), or jwks / jwks_file (signed client assertions)"
            )
        if self.scope == "consortium" and not {"operator", "admin"} & set(self.roles):
            raise ValueError("scope consortium is for operator or admin clients")
        return self


class Consortium(Strict):
    version: int = 1
    id: str = Field(pattern=FHIR_ID_PATTERN)
    name: str
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    facilities: list[Facility]
    routes: list[Route] = Field(default_factory=list)
    care: Care = Field(default_factory=Care)
    referrals: Referrals = Field(default_factory=Referrals)
    patient_index: PatientIndex = Field(default_factory=PatientIndex)
    sync: SyncConfig | None = None  # the sources of a night (adapter sync, docs/sync.md)
    clients: list[Client] = Field(default_factory=list)  # API callers (docs/security.md)

    @model_validator(mode="after")
    def _check_references(self) -> Consortium:
        problems = self.reference_problems()
        if problems:
            key_path, message = problems[0]
            raise ValueError(f"{'.'.join(str(p) for p in key_path)}: {message}")
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Ids used twice and routes naming unknown facilities or destinations, each with the
        key path of the offending value (so the loader can name the file line)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        facility_ids: set[str] = set()
        source_ids: set[str] = set()
        destination_ids: set[str] = set()
        for f_no, facility in enumerate(self.facilities):
            if facility.id in facility_ids:
                problems.append(
                    (("facilities", f_no, "id"), f"facility id {facility.id!r} is used twice")
                )
            facility_ids.add(facility.id)
            for s_no, source in enumerate(facility.sources):
                if source.id in source_ids:
                    problems.append(
                        (
                            ("facilities", f_no, "sources", s_no, "id"),
                            f"source system id {source.id!r} is used twice",
                        )
                    )
                source_ids.add(source.id)
            for d_no, destination in enumerate(facility.destinations):
                if destination.id in destination_ids:
                    problems.append(
                        (
                            ("facilities", f_no, "destinations", d_no, "id"),
                            f"destination id {destination.id!r} is used twice",
                        )
                    )
                destination_ids.add(destination.id)
        for number, route in enumerate(self.routes):
            for i, name in enumerate(route.from_):
                if name != "*" and name not in facility_ids:
                    problems.append(
                        (
                            ("routes", number, "from", i),
                            f"routes[{number}].from names unknown facility {name!r}",
                        )
                    )
            for i, name in enumerate(route.to):
                if name not in destination_ids:
                    problems.append(
                        (
                            ("routes", number, "to", i),
                            f"routes[{number}].to names unknown destination {name!r}",
                        )
                    )
        for i, name in enumerate(self.patient_index.deliver_to):
            if name not in destination_ids:
                problems.append(
                    (
                        ("patient_index", "deliver_to", i),
                        f"patient_index.deliver_to names unknown destination {name!r}",
                    )
                )
        client_ids: set[str] = set()
        for number, client in enumerate(self.clients):
            if client.id in client_ids:
                problems.append(
                    (("clients", number, "id"), f"client id {client.id!r} is used twice")
                )
            client_ids.add(client.id)
            if client.facility not in facility_ids:
                problems.append(
                    (
                        ("clients", number, "facility"),
                        f"clients[{number}] names unknown facility {client.facility!r}",
                    )
                )
        for i, name in enumerate(self.referrals.county_facilities or []):
            if name not in facility_ids:
                problems.append(
                    (
                        ("referrals", "county_facilities", i),
                        f"referrals.county_facilities names unknown facility {name!r}",
                    )
                )
        if self.sync is not None:
            owned = {f.id: {s.id for s in f.sources} for f in self.facilities}
            problems.extend(sync_problems(self.sync, owned))
        return problems

    # -- look-ups ---------------------------------------------------------------------------
    def source(self, source_id: str) -> tuple[Facility, SourceSystem] | None:
        for facility in self.facilities:
            for source in facility.sources:
                if source.id == source_id:
                    return facility, source
        return None

    def facility(self, facility_id: str) -> Facility | None:
        return next((f for f in self.facilities if f.id == facility_id), None)

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.id == client_id), None)

    def destinations(self) -> list[tuple[Facility, Destination]]:
        return [(f, d) for f in self.facilities for d in f.destinations]


def load_consortium(path: Path) -> Consortium:
    """Read and check a consortium file; raise ``ConfigError`` naming file, key and line."""
    data, index = read_config(path, "the consortium file")
    try:
        consortium = Consortium.model_validate(data)
    except ValidationError as exc:
        key_path, message = first_problem(exc)
        if not key_path:
            # a cross-reference problem found after the fields: name its own key and line
            problems = (
                Consortium.model_construct(**_shallow(data)).reference_problems()
                if _fields_ok(data)
                else []
            )
            if problems:
                key_path, message = list(problems[0][0]), problems[0][1]
        raise located(path, index, key_path, message) from None
    _check_allow_lists(consortium, path, index)
    consortium = _with_client_keys(consortium, path, index)
    return _with_rules(consortium, path, index)


def _with_client_keys(consortium: Consortium, path: Path, index: Any) -> Consortium:
    """Each client's ``jwks_file`` (relative to the consortium file) read into ``jwks`` and
    every client's keys checked now, so a bad key stops start-up with its file line."""
    import json

    from adapter.auth.assertions import key_set
    from adapter.errors import ConfigError

    clients = []
    for number, client in enumerate(consortium.clients):
        key_path: list[str | int] = ["clients", number, "jwks_file" if client.jwks_file else "jwks"]
        if client.jwks_file is not None:
            jwks_path = (path.parent / client.jwks_file).resolve()
            try:
                loaded = json.loads(jwks_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not JSON"
                raise located(path, index, key_path, f"{client.jwks_file}: {why}") from None
            if not isinstance(loaded, dict):
                raise located(path, index, key_path, f"{client.jwks_file}: not a JWK Set")
            client = client.model_copy(update={"jwks": loaded})
        if client.jwks is not None:
            try:
                key_set(client)
            except ConfigError as exc:
                raise located(path, index, key_path, exc.message) from None
        clients.append(client)
    return consortium.model_copy(update={"clients": clients})


def _check_allow_lists(consortium: Consortium, path: Path, index: Any) -> None:
    """Each MLLP source's ``connector.allow_from`` (peer addresses it accepts) is read now,
    so a wrong entry stops start-up with the file line of that entry."""
    from adapter.peer_allow import AllowListError, parse_allow_from

    for f_no, facility in enumerate(consortium.facilities):
        for s_no, source in enumerate(facility.sources):
            connector = source.connector or {}
            if "allow_from" not in connector:
                continue
            key_path: list[str | int] = [
                *("facilities", f_no, "sources", s_no),
                *("connector", "allow_from"),
            ]
            try:
                if connector.get("kind") != "mllp":
                    raise AllowListError("allow_from is a setting of MLLP sources (kind: mllp)")
                parse_allow_from(connector["allow_from"])
            except AllowListError as exc:
                if exc.position is not None:
                    key_path.append(exc.position)
                raise located(path, index, key_path, str(exc)) from None


def _with_rules(consortium: Consortium, path: Path, index: Any) -> Consortium:
    """The matching rules file made absolute (relative to the consortium file) and checked
    now, so a mistake in it stops start-up with its own file and line."""
    from adapter.identity.rules import rules_at

    name = consortium.patient_index.matching_rules
    if name is None:
        rules_at(None)
        return consortium
    rules_path = (path.parent / name).resolve()
    if not rules_path.is_file():
        raise located(
            path,
            index,
            ["patient_index", "matching_rules"],
            f"matching rules file {name!r} not found",
        )
    rules_at.cache_clear()  # a reload reads the file again
    rules_at(str(rules_path))
    updated = consortium.patient_index.model_copy(update={"matching_rules": str(rules_path)})
    return consortium.model_copy(update={"patient_index": updated})


def _fields_ok(data: dict[str, Any]) -> bool:
    """Whether every field validates on its own (then only cross-references are wrong)."""
    try:
        for facility in data.get("facilities") or []:
            Facility.model_validate(facility)
        for route in data.get("routes") or []:
            Route.model_validate(route)
        PatientIndex.model_validate(data.get("patient_index") or {})
        for client in data.get("clients") or []:
            Client.model_validate(client)
        if data.get("sync"):
            SyncConfig.model_validate(data["sync"])
        Referrals.model_validate(data.get("referrals") or {})
    except ValidationError:
        return False
    return True


def _shallow(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "facilities": [Facility.model_validate(f) for f in data.get("facilities") or []],
        "routes": [Route.model_validate(r) for r in data.get("routes") or []],
        "patient_index": PatientIndex.model_validate(data.get("patient_index") or {}),
        "sync": SyncConfig.model_validate(data["sync"]) if data.get("sync") else None,
        "clients": [Client.model_validate(c) for c in data.get("clients") or []],
        "referrals": Referrals.model_validate(data.get("referrals") or {}),
    }
