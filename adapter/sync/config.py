"""The ``sync:`` part of the consortium file: the sources of a night (data only).

Each sync source is one facility's documents of one kind (lab reports, referral slips ...)
read from one place: dated export folders, a FHIR server, or a database view (中间库). The
documents go through the source system named by ``source`` (its format and mapping), so a
night's file is stored exactly as the same document sent by HTTP or MLLP would be.
Checked when the consortium file is loaded; a mistake names the file line.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SYNC_ID_PATTERN = r"^[A-Za-z0-9\-\.]{1,64}$"
_DAILY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileNight(_Strict):
    """A folder per night (``path`` with ``{date:%Y%m%d}``), or one watched folder whose
    per-night manifest (``manifest`` with the date in its name) lists the night's files."""

    path: str = Field(description="folder; {date:FORMAT} is replaced by the business day")
    pattern: str = Field("*", description="document file names (manifest excluded)")
    manifest: str | None = Field(
        None,
        description="CSV file in the folder listing the night: file,key[,op] "
        "(op: new, corrected, deleted); {date:FORMAT} allowed",
    )
    key: Literal["stem", "name"] = Field(
        "stem", description="business key of a file without manifest: name without extension"
    )

    @model_validator(mode="after")
    def _dated(self) -> FileNight:
        if "{date" not in self.path and (self.manifest is None or "{date" not in self.manifest):
            raise ValueError(
                "a file night needs {date:%Y%m%d} in path (a folder per night) or in "
                "manifest (a watched folder with a manifest per night)"
            )
        for text in (self.path, self.manifest or ""):
            try:
                _ = text.format(date=_SAMPLE_DAY)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{text!r}: only {{date:FORMAT}} may be used ({exc})") from None
        return self


class FhirNight(_Strict):
    """A FHIR server: a ``_lastUpdated`` window search, or Bulk Data ``$export``."""

    base_url: str
    resource_type: str = Field(description="the type whose resources are the documents")
    key_system: str | None = Field(
        None, description="identifier system of the business key (default: Type/id)"
    )
    mode: Literal["search", "bulk"] = "search"
    page_size: int = Field(200, ge=1, le=1000)
    count: bool = Field(True, description="ask the server its own count (_summary=count)")
    auth: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(30.0, gt=0)
    poll_max_seconds: float = Field(3600.0, gt=0, description="bulk: give an export up after")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("resource_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not value.isalpha() or not value[:1].isupper():
            raise ValueError(f"{value!r} is not a FHIR resource type name")
        return value


class DatabaseNight(_Strict):
    """A database view or query (中间库 / 视图) reached with any SQLAlchemy URL."""

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. mysql+pymysql://u@h/db")
    url_env: str | None = Field(None, description="environment variable holding the URL")
    view: str | None = Field(None, description="a table or view name")
    query: str | None = Field(None, description="a SELECT (used as a sub-query)")
    key_column: str = Field(description="business key: report number, slip number ...")
    watermark_column: str = Field(description="last change time (or an increasing number)")
    day_column: str | None = Field(None, description="business day; default: the watermark")
    document_column: str | None = Field(
        None, description="the column holding the document; none: the row is the document"
    )
    status_column: str | None = Field(
        None, description="column saying deleted (作废) / corrected, see deleted_values"
    )
    deleted_values: list[str] = Field(default_factory=lambda: ["deleted", "void", "作废", "1"])
    count_query: str | None = Field(
        None, description="the source's own count of a day: SELECT COUNT(*) ... :day"
    )
    list_query: str | None = Field(
        None, description="the source's own list of a day's keys: SELECT key ... :day"
    )

    @model_validator(mode="after")
    def _one_each(self) -> DatabaseNight:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if (self.view is None) == (self.query is None):
            raise ValueError("give exactly one of view and query")
        if self.url is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(self.url)
            except ArgumentError:
                raise ValueError("url is not a SQLAlchemy database URL") from None
        names = [self.key_column, self.watermark_column, self.day_column, self.document_column]
        names += [self.status_column, self.view]
        for name in names:
            if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
                raise ValueError(f"{name!r} is not a plain column or view name")
        for text in (self.count_query, self.list_query):
            if text is not None and ":day" not in text:
                raise ValueError(f"{text!r} must use the :day parameter")
        return self


class SyncSource(_Strict):
    id: str = Field(pattern=SYNC_ID_PATTERN)
    facility: str
    source: str = Field(description="source system (consortium file) the documents go through")
    document_kind: str = Field(description="lab-report, referral-slip, discharge-summary ...")
    content_type: str | None = None
    files: FileNight | None = None
    fhir: FhirNight | None = None
    database: DatabaseNight | None = None
    overlap_minutes: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_place(self) -> SyncSource:
        given = [n for n in ("files", "fhir", "database") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of files, fhir, database")
        return self

    @property
    def place(self) -> str:
        return "files" if self.files else "fhir" if self.fhir else "database"


class Schedule(_Strict):
    daily_at: str = Field(description="HH:MM in the consortium time zone")
    lease_seconds: float = Field(3600.0, gt=0)

    @field_validator("daily_at")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _DAILY.match(value):
            raise ValueError(f"{value!r} is not HH:MM")
        return value


class SyncConfig(_Strict):
    overlap_minutes: float = Field(120.0, ge=0, description="late records: re-read this much")
    checkpoint_every: int = Field(50, ge=1, description="documents between two checkpoints")
    volume_drop_percent: float = Field(30.0, gt=0, lt=100)
    volume_history_runs: int = Field(28, ge=3)
    max_attempts: int = Field(3, ge=1, description="a source failing this often stops the run")
    jobs: int = Field(
        1, ge=1, le=16, description="processes sharing the sources out (adapter sync --jobs)"
    )
    schedule: Schedule | None = None
    sources: list[SyncSource] = Field(default_factory=list)


_SAMPLE_DAY = __import__("datetime").date(2026, 1, 2)


def sync_problems(config: SyncConfig, facilities: dict[str, set[str]]) -> list[tuple[Any, str]]:
    """Sync sources naming unknown facilities or source systems, or ids used twice, each
    with the key path of the offending value (so the loader names its line)."""
    problems: list[tuple[Any, str]] = []
    seen: set[str] = set()
    for number, item in enumerate(config.sources):
        where = ("sync", "sources", number)
        if item.id in seen:
            problems.append(((*where, "id"), f"sync source id {item.id!r} is used twice"))
        seen.add(item.id)
        if item.facility not in facilities:
            problems.append(((*where, "facility"), f"unknown facility {item.facility!r}"))
        elif item.source not in facilities[item.facility]:
            problems.append(
                (
                    (*where, "source"),
                    f"facility {item.facility!r} has no source system {item.source!r}",
                )
            )
    return problems
