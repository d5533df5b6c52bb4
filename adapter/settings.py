"""Runtime settings: the only place that reads the environment (prefix ``ADAPTER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONSORTIUM = PROJECT_ROOT / "fixtures" / "consortium.yaml"
DEFAULT_MAPPINGS = PROJECT_ROOT / "mappings"


# base64 of this many bytes is exactly 1 MiB, the largest FHIR string the checks allow
ORIGINAL_INLINE_LIMIT = 786_432


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADAPTER_", env_file=None, extra="ignore")

    database_url: str = Field(
        "sqlite:///./adapter.db",
        description="SQLAlchemy URL; PostgreSQL in production (postgresql+psycopg://...)",
    )
    config: Path = Field(
        DEFAULT_CONSORTIUM,
        description="Consortium file (YAML): facilities, source systems, destinations, routes",
    )
    mappings_dir: Path = Field(DEFAULT_MAPPINGS, description="Root of the mapping folders")
    recognition_catalogue: Path | None = Field(
        None,
        description="Recognition catalogue (互认目录, YAML); unset: recognition.yaml beside the "
        "consortium file when there is one, else recognition is off",
    )
    max_message_bytes: int = Field(
        5 * 1024 * 1024, gt=0, description="Inputs larger than this are refused and quarantined"
    )
    oversize_keep_bytes: int = Field(
        65536,
        gt=0,
        le=16 * 1024 * 1024,
        description="Of a refused oversize input, only this many first bytes are kept",
    )
    original_inline_max_bytes: int = Field(
        256 * 1024,
        ge=0,
        le=ORIGINAL_INLINE_LIMIT,
        description="A kept original up to this size is carried inline (base64) in its "
        "DocumentReference; a larger one is linked to /messages/{id}/raw",
    )
    ingest_group_max: int = Field(
        32,
        ge=0,
        le=1000,
        description="POST /ingest and MLLP: documents received while a write transaction "
        "runs are stored together in the next one, at most this many (0 or 1: each alone)",
    )
    ingest_drain: bool = Field(
        True,
        description="adapter serve drains the documents answered on receipt (status "
        "received) in a background thread; off: only adapter drain does",
    )
    ingest_drain_process: bool | None = Field(
        None,
        description="adapter serve's drain runs in a process of its own (the store out of "
        "the receipts' interpreter lock); default: when ADAPTER_TRANSLATE_WORKERS is 1 or "
        "more (decision 0102)",
    )
    ingest_drain_batch: int = Field(
        100, gt=0, le=1000, description="Documents the drain stores per transaction at most"
    )
    ingest_drain_defer_seconds: float | None = Field(
        None,
        ge=0,
        le=60,
        description="While receipts keep arriving, the server's drain waits for a pause, at "
        "most until the first document waiting is this old (0: drain at once; unset: 2, or 0 "
        "on PostgreSQL with the drain in a process of its own, decision 0111)",
    )
    http_max_connections: int = Field(
        256, gt=0, description="Open connections adapter serve accepts (see docs/operations.md)"
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, description="The request line and headers must arrive within this"
    )
    http_body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest silence between two reads of a request body"
    )
    http_keep_alive_seconds: float = Field(
        5.0, gt=0, description="An idle kept-alive connection is closed after this"
    )
    http_max_header_bytes: int = Field(
        16384, gt=0, description="Request line plus headers larger than this are refused"
    )
    max_segments: int = Field(
        10_000, gt=0, description="HL7 v2 segments in one message; more are quarantined"
    )
    max_fields: int = Field(1_000, gt=0, description="Fields in one HL7 v2 segment")
    max_repetitions: int = Field(1_000, gt=0, description="Repetitions of one HL7 v2 field")
    max_components: int = Field(
        100, gt=0, description="Components of one HL7 v2 field repetition (and subcomponents)"
    )
    max_nesting_depth: int = Field(
        100, gt=0, description="JSON objects and arrays nested inside each other"
    )
    translate_workers: int | None = Field(
        None,
        ge=0,
        description="Worker processes translating while bulk ingest (adapter sync, adapter "
        "ingest of many files) stores; default one per core beyond the first, at most 2; "
        "0: translate in the ingesting process",
    )
    default_timezone: str = Field(
        "Asia/Shanghai", description="Zone given to source times that carry none"
    )
    base_url: str = Field(
        "http://localhost:8080/fhir", description="Public base of the FHIR API, for Bundle links"
    )
    page_size_default: int = Field(50, gt=0)
    page_size_max: int = Field(500, gt=0)
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (CORS), as a JSON list "
        "('[\"https://app.example.cn\"]', '[\"*\"]' for any); empty: CORS off",
    )
    cors_allow_credentials: bool = Field(
        False, description="CORS: browsers may send cookies / Authorization (never with *)"
    )
    cors_max_age_seconds: int = Field(600, ge=0, description="CORS: how long a preflight holds")
    log_level: str = "INFO"
    log_json: bool = Field(False, description="One JSON object per log line (for log shippers)")
    audit_signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs audit checkpoints and archives "
        "(adapter audit keygen; docs/audit.md)",
    )
    audit_public_key: Path | None = Field(
        None,
        description="Public key that adapter audit verify checks signatures with "
        "(default: the public half of ADAPTER_AUDIT_SIGNING_KEY)",
    )
    audit_checkpoint_minutes: float = Field(
        60.0, gt=0, description="adapter serve signs a checkpoint of the audit log this often"
    )
    audit_retention_days: int = Field(
        180,
        ge=180,
        description="Audit records stay in the database at least this long (等保 level 3: "
        "at least 180 days); older ones may be archived and purged",
    )
    auth: bool = Field(
        True,
        description="on: every API call needs a bearer token of a client of the consortium "
        "file (docs/security.md); off: no authentication (local trials only)",
    )
    auth_signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs access tokens (adapter auth keygen); "
        "unset: a key made at start-up, lost (with every token) at restart",
    )
    auth_verify_keys: list[Path] = Field(
        default_factory=list,
        description="Public keys (PEM) of earlier signing keys whose tokens are still "
        "accepted, as a JSON list (key rotation, docs/security.md)",
    )
    auth_issuer: str = Field("yigongti-fhir-adapter", description="iss of the tokens made")
    auth_audience: str = Field(
        "yigongti-fhir-adapter", description="aud of the tokens made, and required of tokens"
    )
    auth_token_seconds: int = Field(
        900, gt=0, le=86400, description="How long an access token is valid"
    )
    auth_max_failures: int = Field(
        5, gt=0, description="Failed token requests per client and address before 429"
    )
    auth_failure_window_seconds: float = Field(
        300.0, gt=0, description="The window those failures are counted in"
    )
    tls_cert_file: Path | None = Field(
        None,
        description="adapter serve speaks HTTPS with this certificate (PEM, chain first); "
        "unset: plain HTTP (behind a TLS-terminating proxy, or a local trial)",
    )
    tls_key_file: Path | None = Field(None, description="The private key of ADAPTER_TLS_CERT_FILE")
    tls_client_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) whose client certificates the HTTPS listener "
        "accepts (mTLS; clients with certificate: in the consortium file); unset: none asked",
    )
    deliver_in_process: bool = Field(
        False, description="adapter serve also runs the delivery worker (embedded default)"
    )
    data_dir: Path = Field(
        Path("./adapter-data"),
        description="This host's small state files (the console's last mapping check); "
        "created when first needed",
    )
    outbox_retention_days: int = Field(
        30,
        ge=0,
        description="Delivered outbox rows (and their attempts) are pruned this many days "
        "after delivery by the process running the delivery worker; 0 or keep: never "
        "(decision 0064, docs/operations.md#outbox-retention)",
    )
    outbox_prune_minutes: float = Field(
        60.0, gt=0, description="How often the delivery worker's process prunes the outbox"
    )
    outbox_prune_batch: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Outbox rows deleted per transaction by a prune (short transactions)",
    )

    @field_validator("outbox_retention_days", mode="before")
    @classmethod
    def _keep_means_never(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "keep":
            return 0
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def originals_base(settings: Settings) -> str:
    """Where links to kept originals point: the API root beside ``/fhir`` when
    ``ADAPTER_BASE_URL`` is set (``https://host/fhir`` -> ``https://host``), else "" (links
    relative to the adapter's own address, ``/messages/{id}/raw``)."""
    if "base_url" not in settings.model_fields_set:
        return ""
    return settings.base_url.rstrip("/").removesuffix("/fhir")
