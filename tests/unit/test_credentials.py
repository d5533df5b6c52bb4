"""Credentials removed from stored answers and log text."""

from __future__ import annotations

import base64

from adapter.credentials import CREDENTIAL_MASK, redact_credentials, redact_credentials_in
from adapter.logs import redact

BASIC = base64.b64encode(b"adapter:s3cret-pw").decode()


def test_header_echoes_lose_their_values() -> None:
    text = f"POST /fhir HTTP/1.1\r\nAuthorization: Basic {BASIC}\r\nProxy-Authorization: x y\r\n"
    out = redact_credentials(text)
    assert BASIC not in out and "x y" not in out
    assert out.count(CREDENTIAL_MASK) == 2
    assert "POST /fhir HTTP/1.1" in out


def test_bearer_basic_and_token_fields() -> None:
    assert redact_credentials("got Bearer tok-123456") == f"got Bearer {CREDENTIAL_MASK}"
    assert redact_credentials(f"Basic {BASIC}") == f"Basic {CREDENTIAL_MASK}"
    assert redact_credentials('{"access_token": "abc", "n": 1}') == (
        f'{{"access_token": "{CREDENTIAL_MASK}", "n": 1}}'
    )
    assert redact_credentials("client_secret=xyz&grant_type=client_credentials") == (
        f"client_secret={CREDENTIAL_MASK}&grant_type=client_credentials"
    )
    # ordinary words stay: "Basic" followed by something that is no user:password
    assert redact_credentials("Basic metabolic panel") == "Basic metabolic panel"


def test_configured_secrets_go_wherever_they_stand_and_however_encoded() -> None:
    secret = "pa ss/wörd"
    text = f"echo {secret} / pa+ss%2Fw%C3%B6rd / pa%20ss%2Fw%C3%B6rd"
    out = redact_credentials(text, [secret])
    assert "pa ss" not in out and "pa%20ss" not in out and "pa+ss" not in out


def test_json_values_under_credential_keys_are_masked() -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"diagnostics": f"headers were Authorization: Basic {BASIC}"}],
        "echo": {"headers": {"authorization": "Bearer abcdefgh", "Accept": "application/json"}},
    }
    out = redact_credentials_in(body, ["s3cret-pw"])
    assert BASIC not in str(out) and "abcdefgh" not in str(out)
    assert out["echo"]["headers"]["Accept"] == "application/json"
    assert body["echo"]["headers"]["authorization"] == "Bearer abcdefgh"  # a copy


def test_the_log_redaction_removes_credentials_and_database_values() -> None:
    assert BASIC not in redact(f"sending with Authorization: Basic {BASIC}")
    pg = (
        'new row for relation "search_index" violates check constraint "x"\n'
        "DETAIL:  Failing row contains (59, Patient, abc, family, string, 欧阳, 欧阳).\n"
    )
    out = redact(pg)
    assert "欧阳" not in out and "violates check constraint" in out
    assert "欧阳" not in redact("DETAIL:  Key (value)=(欧阳) already exists.")
    assert "欧阳" not in redact("(1062, \"Duplicate entry '欧阳' for key 'uq'\")")
    assert "欧阳" not in redact('invalid input syntax for type integer: "欧阳"')


def test_a_clipped_error_summary_keeps_no_piece_of_a_credential() -> None:
    from adapter.connectors.http import error_for_status

    # the Authorization header straddles the 200 characters the summary keeps
    quoted = "x" * 170 + f"; Authorization: Basic {BASIC}; Host: h"
    body = {"resourceType": "OperationOutcome", "issue": [{"code": "x", "diagnostics": quoted}]}
    error = error_for_status(400, what="PUT Observation/o1", outcome=body, secrets=["s3cret-pw"])
    assert BASIC[:6] not in error.message
    assert BASIC not in str(error.outcome_body)
    assert body["issue"][0]["diagnostics"] == quoted  # the caller's copy is untouched
