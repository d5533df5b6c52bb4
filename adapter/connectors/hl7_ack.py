"""HL7 v2 acknowledgements (original mode): building one for a received message and reading
one received for a sent message.

An ACK answers in the delimiters and charset of the message it acknowledges, swaps the
sending and receiving application/facility, and names the acknowledged message by its
control id (MSA-2 = MSH-10). Errors go in MSA-3 (short text) and one ERR segment per issue
(ERR-2 location, ERR-3 HL7 error code from table 0357, ERR-4 severity, ERR-8 the text).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from adapter.errors import AdapterError, Issue, operation_outcome
from adapter.hl7v2 import Delimiters, Message, codec_for, escape, parse_hl7v2

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]
ACCEPTED = frozenset({"AA", "CA"})

# FHIR issue type -> HL7 table 0357 message error condition code
_ERROR_CODES = {
    "structure": ("100", "Segment sequence error"),
    "required": ("101", "Required field missing"),
    "value": ("102", "Data type error"),
    "invalid": ("102", "Data type error"),
    "too-long": ("102", "Data type error"),
    "code-invalid": ("103", "Table value not found"),
    "not-supported": ("200", "Unsupported message type"),
}
_INTERNAL = ("207", "Application internal error")
_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?(?:\[(\d+)\])?(?:\.(\d+))?")


@dataclass
class MessageHeader:
    """What an ACK copies from the message it answers."""

    delimiters: Delimiters
    codec: str
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5.1"
    charset: str = ""  # MSH-18 as written


def header_of(raw: bytes, message: Message | None = None) -> MessageHeader:
    """The header of a message, read leniently: also from bytes the parser refused."""
    if message is None:
        try:
            message = parse_hl7v2(raw)
        except AdapterError:
            message = None
    if message is not None:
        msh = message.msh
        return MessageHeader(
            delimiters=message.delimiters,
            codec=message.charset,
            sending_application=msh.raw(3),
            sending_facility=msh.raw(4),
            receiving_application=msh.raw(5),
            receiving_facility=msh.raw(6),
            trigger=msh.get(9, 1, 2),
            control_id=msh.get(10),
            processing_id=msh.raw(11) or "P",
            version=msh.raw(12) or "2.5.1",
            charset=msh.raw(18),
        )
    # unreadable: take what can be found in the first MSH line. Its bytes are decoded with
    # the declared charset when they are valid in it, else as latin-1 (one character per
    # byte, so echoed fields still go back exactly as they came)
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 8:
        return MessageHeader(delimiters=Delimiters(), codec="latin-1")
    first = re.split(rb"[\r\n\x1c]", raw[start:], maxsplit=1)[0]
    codec = "latin-1"
    line = first.decode("latin-1")
    separator = line[3]
    fields = line.split(separator)
    declared = codec_for(fields[17]) if len(fields) > 17 else None
    if declared:
        try:
            line = first.decode(declared)
            codec = declared
            fields = line.split(separator)
        except (UnicodeDecodeError, LookupError):
            pass
    encoding = fields[1] if len(fields) > 1 and 4 <= len(fields[1]) <= 5 else "^~\\&"
    try:
        delimiters = Delimiters(separator, encoding, codec)
    except (ValueError, IndexError):
        delimiters = Delimiters(codec=codec)

    def f(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    trigger = f(9).split(delimiters.component)
    return MessageHeader(
        delimiters=delimiters,
        codec=codec,
        sending_application=f(3),
        sending_facility=f(4),
        receiving_application=f(5),
        receiving_facility=f(6),
        trigger=trigger[1] if len(trigger) > 1 else "",
        control_id=f(10).split(delimiters.component)[0][:50],
        processing_id=f(11) or "P",
        version=f(12) or "2.5.1",
        charset=f(18),
    )


def build_ack(
    header: MessageHeader,
    code: AckCode,
    issues: list[Issue] | None = None,
    *,
    now: datetime | None = None,
    zone: str = "Asia/Shanghai",
) -> bytes:
    """The ACK message (without MLLP framing), encoded in the acknowledged message's charset."""
    d = header.delimiters
    fs = d.field
    moment = (now or datetime.now(ZoneInfo(zone))).strftime("%Y%m%d%H%M%S%z")
    msh = [
        "MSH",
        d.encoding_characters,
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        moment,
        "",
        d.component.join(["ACK", header.trigger, "ACK"]) if header.trigger else "ACK",
        uuid.uuid4().hex[:20],
        header.processing_id,
        header.version,
        "",
        "",
        "",
        "",
        "",
        header.charset,
    ]
    while msh and msh[-1] == "":
        msh.pop()
    errors = [i for i in issues or [] if i.severity in ("fatal", "error")] if code != "AA" else []
    text = _short(errors[0].diagnostics) if errors else ""
    segments = [
        fs.join(msh),
        fs.join(["MSA", code, escape(header.control_id, d), escape(text, d)]).rstrip(fs),
    ]
    for issue in errors[:20]:
        number, name = _ERROR_CODES.get(issue.code, _INTERNAL)
        segments.append(
            fs.join(
                [
                    "ERR",
                    "",
                    _erl(issue.location, d),
                    d.component.join([number, name, "HL70357"]),
                    "E" if issue.severity in ("fatal", "error") else "W",
                    "",
                    "",
                    "",
                    escape(issue.diagnostics, d),
                ]
            )
        )
    return ("\r".join(segments) + "\r").encode(header.codec, errors="replace")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _erl(location: str | None, d: Delimiters) -> str:
    """``OBX[3]-5[1].2`` -> ERL ``OBX^3^5^1^2``."""
    if not location:
        return ""
    match = _LOCATION.match(location)
    if not match:
        return ""
    segment, occurrence, fld, rep, comp = match.groups()
    parts = [segment, occurrence or "1", fld or "", rep or "", comp or ""]
    while parts and parts[-1] == "":
        parts.pop()
    return d.component.join(parts)


# -- reading an ACK ---------------------------------------------------------------------------
@dataclass
class Ack:
    code: str
    control_id: str  # MSA-2: the control id of the acknowledged message
    text: str = ""
    issues: list[Issue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED

    def outcome(self) -> dict[str, object]:
        """The ACK's errors as an OperationOutcome (kept with a failed delivery)."""
        issues = self.issues or [
            Issue("error", "processing", self.text or f"the receiver answered {self.code}")
        ]
        return operation_outcome(issues)


def read_ack(raw: bytes) -> Ack:
    """Read an ACK; raises AdapterError (ParseError) if it is not one."""
    message = parse_hl7v2(raw)
    msa = message.first("MSA")
    if msa is None:
        from adapter.errors import ParseError

        raise ParseError("the answer has no MSA segment", location="MSA")
    issues = []
    for err in message.segments_named("ERR"):
        text = err.get(8) or err.get(3, 1, 2) or err.get(1, 1, 4) or "error"
        where = _location_of_erl(err.components(2)) if err.raw(2) else None
        severity = {"W": "warning", "I": "information"}.get(err.get(4), "error")
        issues.append(
            Issue(
                severity,
                "processing",
                text,  # type: ignore[arg-type]
                location=where,
            )
        )
    return Ack(msa.get(1).upper(), msa.get(2), msa.get(3), issues)


def _location_of_erl(parts: list[str]) -> str | None:
    """ERL ``OBX^3^5`` -> ``OBX[3]-5`` (the adapter's own location form)."""
    if not parts or not parts[0]:
        return None
    where = parts[0] + (f"[{parts[1]}]" if len(parts) > 1 and parts[1] else "")
    if len(parts) > 2 and parts[2]:
        where += f"-{parts[2]}"
    return where
