"""What a FHIR answer looks like on the wire, for every route under /fhir (FHIR R4 http.html):

* the format: ``_format`` (wins) or ``Accept``: FHIR JSON (the default) or FHIR XML; a
  request that accepts neither gets a 406 OperationOutcome naming what is served, never
  JSON with a 200;
* ``_pretty=true``: indented JSON or XML;
* both parameters are taken out of the query the routes see (so paging links do not carry
  them: clients that page in XML send ``Accept``);
* ``HEAD``: the GET answer's status and headers without its body;
* conditional reads: ``If-None-Match`` equal to the answer's ETag, or ``If-Modified-Since``
  not older than its Last-Modified, turn a 200 into a 304 without a body.

The routes keep producing FHIR JSON dicts; this pure ASGI middleware re-renders an answer
only when XML or pretty printing was asked for, so the common JSON answer streams through
untouched (no second parse).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import parse_qsl

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.api.responses import FHIR_JSON, FHIRResponse
from adapter.errors import Issue, operation_outcome
from adapter.fhir.xml import FHIR_XML, XmlRenderError, to_xml

Format = Literal["json", "xml"]

_JSON_TYPES = {FHIR_JSON, "application/json", "application/json+fhir", "json"}
_XML_TYPES = {FHIR_XML, "application/xml", "text/xml", "application/xml+fhir", "xml"}
SUPPORTED = f"{FHIR_JSON} (_format=json) and {FHIR_XML} (_format=xml)"


class NotAcceptable(ValueError):
    pass


def choose_format(query: dict[str, str], accept: str | None) -> Format:
    """The format to answer in; NotAcceptable when the request takes none we serve."""
    asked = query.get("_format")
    if asked is not None:
        # an unescaped "+" in a query string arrives as a space: application/fhir xml
        media = asked.split(";")[0].strip().lower().replace(" ", "+")
        if media in _JSON_TYPES:
            return "json"
        if media in _XML_TYPES:
            return "xml"
        raise NotAcceptable(f"_format={asked[:60]!r} is not served; served: {SUPPORTED}")
    if not accept or not accept.strip():
        return "json"
    best: tuple[float, int, Format] | None = None
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if quality <= 0:
            continue
        if media in _JSON_TYPES or media in ("*/*", "application/*"):
            found: Format = "json"
        elif media in _XML_TYPES or media == "text/*":
            found = "xml"
        else:
            continue
        # the highest quality wins; at equal quality the first listed
        if best is None or quality > best[0]:
            best = (quality, position, found)
    if best is None:
        raise NotAcceptable(f"Accept: {accept[:100]!r} takes nothing served; served: {SUPPORTED}")
    return best[2]


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def not_modified(request: Headers, response: MutableHeaders) -> bool:
    """Whether a 200 answer may become a 304 (If-None-Match wins over If-Modified-Since)."""
    etag = response.get("etag")
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        if etag is None:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    since, modified = request.get("if-modified-since"), response.get("last-modified")
    if since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored (RFC 9110 13.1.3)


class FhirNegotiation:
    def __init__(self, app: ASGIApp, prefix: str = "/fhir") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        request = Headers(scope=scope)
        try:
            fmt = choose_format(query, request.get("accept"))
        except NotAcceptable as exc:
            issue = Issue("error", "not-supported", str(exc), location="_format")
            await FHIRResponse(operation_outcome([issue]), status_code=406)(scope, receive, send)
            return
        pretty = query.get("_pretty", "").lower() == "true"
        # answered here in full: the routes (search's strict parameter check) never see them
        scope = {**scope, "query_string": _without_format(scope.get("query_string", b""))}
        head = scope["method"] == "HEAD"
        if head:
            scope["method"] = "GET"
        answer = _Answer(send, request, fmt=fmt, pretty=pretty, head=head)
        await self.app(scope, receive, answer.send)


def _without_format(query: bytes) -> bytes:
    parts = [p for p in query.split(b"&") if p.split(b"=", 1)[0] not in _OWN_PARAMS]
    return b"&".join(parts)


_OWN_PARAMS = (b"_format", b"_pretty")


class _Answer:
    """Follows one answer through ``send``: passes it on, or collects and re-renders it."""

    def __init__(
        self, send: Send, request: Headers, *, fmt: Format, pretty: bool, head: bool
    ) -> None:
        self._send = send
        self._request = request
        self._fmt = fmt
        self._pretty = pretty
        self._head = head
        self._start: Message | None = None
        self._mode = "pass"  # pass | drop (no body goes out) | render (collect, re-render)
        self._body: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body":
            await self._on_body(message)
        else:
            await self._send(message)

    async def _on_start(self, message: Message) -> None:
        headers = MutableHeaders(scope=message)
        headers.append("Vary", "Accept")
        if message["status"] == 200 and not_modified(self._request, headers):
            self._mode = "drop"
            for name in ("content-length", "content-type"):
                if name in headers:
                    del headers[name]
            await self._send({**message, "status": 304})
            return
        fhir_json = headers.get("content-type", "").startswith(FHIR_JSON)
        if fhir_json and (self._fmt == "xml" or self._pretty):
            self._mode = "render"
            self._start = message
            return
        self._mode = "drop" if self._head else "pass"
        await self._send(message)

    async def _on_body(self, message: Message) -> None:
        more = message.get("more_body", False)
        if self._mode == "pass":
            await self._send(message)
            return
        if self._mode == "drop":
            if not more:
                await self._send({"type": "http.response.body", "body": b""})
            return
        self._body.append(message.get("body", b""))
        if more:
            return
        assert self._start is not None
        start, body = self._render(self._start, b"".join(self._body))
        await self._send(start)
        await self._send({"type": "http.response.body", "body": b"" if self._head else body})

    def _render(self, start: Message, raw: bytes) -> tuple[Message, bytes]:
        content = orjson.loads(raw)
        status = start["status"]
        if self._fmt == "xml":
            try:
                body, media = to_xml(content, pretty=self._pretty), FHIR_XML
            except XmlRenderError as exc:
                issue = Issue(
                    "error",
                    "not-supported",
                    f"This answer cannot be given as FHIR XML ({exc}); ask for {FHIR_JSON}",
                )
                status, media = 406, FHIR_JSON
                body = orjson.dumps(operation_outcome([issue]))
        else:
            body, media = orjson.dumps(content, option=orjson.OPT_INDENT_2), FHIR_JSON
        headers = MutableHeaders(raw=list(start["headers"]))
        headers["content-type"] = f"{media}; charset=utf-8"
        headers["content-length"] = str(len(body))
        return {**start, "status": status, "headers": headers.raw}, body
