"""Errors of the adapter, sorted by what the caller should do next.

    AdapterError                      base; carries a list of located ``Issue``s
    ├── ConfigError                   bad settings or consortium file: refuse to start
    ├── MappingDefinitionError        a mapping file or code table is invalid (file, line)
    ├── MessageError                  this input is bad: quarantine it, never retry
    │   ├── ParseError                bytes could not be read (encoding, framing, syntax)
    │   ├── InputTooLargeError        over the configured size limit
    │   ├── MappingError              a mapping rule could not be applied to this input
    │   └── ValidationError           the produced FHIR would be invalid
    ├── UnknownSourceError            the X-Source-System is not configured
    ├── InvalidRequestError           a malformed request: missing header, bad query value (400)
    ├── UnauthorizedError             no usable bearer token (401, WWW-Authenticate: Bearer)
    ├── ForbiddenError                the client's roles or facility do not allow this (403)
    ├── NotFoundError                 an unknown resource, message or delivery (404)
    ├── UnsupportedError              a resource type or interaction not served (404)
    ├── GoneError                     the resource existed and was deleted (410)
    ├── ConflictError                 the request conflicts with the current state (409)
    │   └── AlteredBytesError         a stored message's bytes no longer match their sha256
    ├── SearchError                   unsupported or malformed search parameter
    └── DeliveryError                 sending to a destination failed
        ├── RetriableDeliveryError    timeouts, connection errors, 408, 429, 5xx
        └── FatalDeliveryError        other 4xx, local validation errors; keeps the OperationOutcome

One FastAPI handler renders every ``AdapterError`` as an OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(slots=True)
class Issue:
    """One located problem, the unit of a message's issue list and of an OperationOutcome.

    ``location`` says where in the input (``OBX[3]-5``, ``/ClinicalDocument/component``,
    ``row 4, column 姓名``) and ``expression`` where in the produced FHIR, when known.
    ``code`` is an IssueType code from the FHIR value set (``structure``, ``value``,
    ``code-invalid``, ``not-supported``, ``incomplete``, ``too-long``, ``informational``, ...).
    """

    severity: Severity
    code: str
    diagnostics: str
    location: str | None = None
    expression: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.location:
            out["location"] = self.location
        if self.expression:
            out["expression"] = self.expression
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Issue:
        return cls(
            severity=data["severity"],
            code=data["code"],
            diagnostics=data["diagnostics"],
            location=data.get("location"),
            expression=data.get("expression"),
        )


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Render issues as a FHIR R4 OperationOutcome (locations in ``location`` and in details)."""
    rendered = []
    for issue in issues or [Issue("error", "exception", "unknown error")]:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.location:
            entry["location"] = [issue.location]
            entry["details"] = {"text": f"at {issue.location}"}
        if issue.expression:
            entry["expression"] = [issue.expression]
        rendered.append(entry)
    return {"resourceType": "OperationOutcome", "issue": rendered}


class AdapterError(Exception):
    """Base of every error the adapter raises on purpose."""

    http_status = 500
    issue_code = "exception"

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        issues: list[Issue] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.issues: list[Issue] = issues or [
            Issue("error", code or self.issue_code, message, location=location)
        ]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class ConfigError(AdapterError):
    """The settings or the consortium file are wrong; the adapter refuses to start."""

    issue_code = "invalid"

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ":".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message, location=where or None)
        self.file = file
        self.key = key


class MappingDefinitionError(AdapterError):
    """A mapping file or code table is invalid; names the file and line."""

    http_status = 409  # the server's mapping files conflict with the request: fix, then retry
    issue_code = "invalid"

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}", location=where)
        self.file = file
        self.line = line


class MessageError(AdapterError):
    """The input itself is bad: it is quarantined and never retried as is."""

    http_status = 422
    issue_code = "invalid"


class ParseError(MessageError):
    issue_code = "structure"


class InputTooLargeError(MessageError):
    http_status = 413
    issue_code = "too-long"


class MappingError(MessageError):
    issue_code = "processing"


class ValidationError(MessageError):
    issue_code = "invalid"


class UnknownSourceError(AdapterError):
    http_status = 400
    issue_code = "not-found"


class InvalidRequestError(AdapterError):
    http_status = 400
    issue_code = "value"


class UnauthorizedError(AdapterError):
    """No usable bearer token: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750)."""

    http_status = 401
    issue_code = "login"

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        challenge = 'Bearer realm="yigongti-fhir-adapter"'
        if error:  # RFC 6750 section 3: the value is ours, never the caller's text
            challenge += f', error="{error}"'
        self.headers = {"WWW-Authenticate": challenge}


class ForbiddenError(AdapterError):
    """The client is known but may not do this (role, facility)."""

    http_status = 403
    issue_code = "forbidden"


class NotFoundError(AdapterError):
    http_status = 404
    issue_code = "not-found"


class UnsupportedError(AdapterError):
    """A resource type (or interaction) this server does not serve."""

    http_status = 404
    issue_code = "not-supported"


class GoneError(AdapterError):
    """The resource existed and was deleted."""

    http_status = 410
    issue_code = "deleted"


class ConflictError(AdapterError):
    http_status = 409
    issue_code = "conflict"


class AlteredBytesError(ConflictError):
    """A stored message's raw bytes no longer hash to the sha256 recorded at receipt: they
    were changed in the database. Neither served nor reprocessed as if genuine."""

    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"message {message_id}: the stored bytes no longer match their sha256 (they were "
            "changed after receipt); refused. Restore the row from a backup, or have the "
            "sender send the message again",
            location="message_id",
        )
        self.message_id = message_id


class SearchError(AdapterError):
    http_status = 400
    issue_code = "not-supported"


@dataclass
class DeliveryError(AdapterError):
    """Sending failed. ``status`` is the HTTP status or ACK code when there was one."""

    message: str
    status: int | str | None = None
    outcome_body: dict[str, Any] | None = field(default=None)
    retry_after: float | None = None

    def __post_init__(self) -> None:
        AdapterError.__init__(self, self.message)

    def __str__(self) -> str:  # dataclass would otherwise print every field
        return self.message


class RetriableDeliveryError(DeliveryError):
    """Worth another try later: connection errors, timeouts, 408, 429, 5xx, ACK timeout."""


class FatalDeliveryError(DeliveryError):
    """Will fail again the same way: other 4xx, AE/AR ACKs, local validation errors."""
