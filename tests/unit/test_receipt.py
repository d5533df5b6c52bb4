"""The Receipt's peer is safe to store and list, whoever builds it (adapter/pipeline/receipt.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapter.pipeline.receipt import Channel, Receipt, address, safe_peer


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("127.0.0.1:5555", "127.0.0.1:5555"),
        ("[::1]:2575", "[::1]:2575"),
        ("cbc-basic.hl7", "cbc-basic.hl7"),
        # credentials, query and fragment of a URL never stored
        (
            "https://user:pw@fhir.example.cn:8443/fhir/Patient/1",
            "https://fhir.example.cn:8443/fhir/Patient/1",
        ),
        (
            "https://fhir.example.cn/fhir/Patient?_id=1&access_token=abc#x",
            "https://fhir.example.cn/fhir/Patient",
        ),
        ("http://[::1]:8080/fhir", "http://[::1]:8080/fhir"),
        # a file named after a patient: national ID and phone masked
        ("110101199003077777_13912345678.hl7", "[REDACTED-ID]_[REDACTED-PHONE].hl7"),
        ("bad\r\nname.hl7", "bad??name.hl7"),
        ("", None),
        (None, None),
    ],
)
def test_safe_peer(given: str | None, kept: str | None) -> None:
    assert safe_peer(given) == kept


def test_a_long_peer_is_cut_to_the_column() -> None:
    assert len(safe_peer("a" * 1000) or "") == 255


def test_receipt_checks_the_channel_and_makes_the_peer_safe() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    receipt = Receipt("lis", "mllp", "http://u:p@h/x?y=1", "text/plain", at)
    assert receipt.channel is Channel.MLLP
    assert receipt.peer == "http://h/x"
    assert receipt.received_at == at
    assert Receipt("lis", Channel.CLI).received_at.tzinfo is not None
    with pytest.raises(ValueError):
        Receipt("lis", "carrier-pigeon")


def test_address() -> None:
    assert address("10.1.2.3", 2575) == "10.1.2.3:2575"
    assert address("::1", 80) == "[::1]:80"
    assert address(None, 80) is None
