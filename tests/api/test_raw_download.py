"""GET /messages/{id}/raw serves the received bytes as a download, never as a page the
browser renders in the adapter's origin (stored XSS through a sender's Content-Type)."""

from __future__ import annotations

from fastapi.testclient import TestClient

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _post(client: TestClient, body: bytes, content_type: str) -> str:
    response = client.post(
        "/ingest",
        content=body,
        headers={"X-Source-System": "std-hl7v2", "Content-Type": content_type},
    )
    return response.headers["X-Message-Id"]


def test_raw_is_an_octet_stream_attachment_whatever_the_sender_declared(
    client: TestClient,
) -> None:
    message_id = _post(client, HTML, "text/html; charset=utf-8")
    raw = client.get(f"/messages/{message_id}/raw")
    assert raw.status_code == 200
    assert raw.content == HTML  # the exact bytes, unchanged
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["x-content-type-options"] == "nosniff"
    disposition = raw.headers["content-disposition"]
    # the file name is ours (message id, and the source's format), never the sender's
    assert disposition == f'attachment; filename="message-{message_id}.hl7"'
    # what the sender declared is still there to read, as data
    assert raw.headers["x-original-content-type"] == "text/html; charset=utf-8"
    assert client.get(f"/messages/{message_id}").json()["content_type"] == (
        "text/html; charset=utf-8"
    )


def test_original_content_type_header_is_sanitised(client: TestClient) -> None:
    # a declared type with bytes a header must not carry (non-ASCII, quotes, control chars)
    message_id = _post(client, b"MSH|x", 'text/html; name="\xe6\x81\xb6"; q=1'.encode("latin-1"))
    raw = client.get(f"/messages/{message_id}/raw")
    assert raw.status_code == 200
    original = raw.headers["x-original-content-type"]
    assert original.isascii() and '"' not in original
    assert original.startswith("text/html; name=")


def test_hl7_download_gets_an_hl7_file_name(client: TestClient) -> None:
    from tests.api.test_ingest import ORU

    body = (ORU / "std-hl7v2" / "cbc-basic.hl7").read_bytes()
    message_id = _post(client, body, "application/hl7-v2")
    raw = client.get(f"/messages/{message_id}/raw")
    assert raw.content == body
    assert raw.headers["content-disposition"] == (
        f'attachment; filename="message-{message_id}.hl7"'
    )


def test_every_response_says_nosniff(client: TestClient) -> None:
    for path in ("/health", "/fhir/metadata", "/fhir/Patient", "/messages", "/no-such-page"):
        response = client.get(path)
        assert response.headers.get("x-content-type-options") == "nosniff", path
