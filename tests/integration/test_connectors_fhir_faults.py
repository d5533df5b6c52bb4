"""FHIR REST destination against a failing hospital endpoint (tests/peers/fault_server.py):
which failures are worth another try, what is kept of a refusal, credentials and TLS."""

from __future__ import annotations

import ssl
import time
from email.utils import formatdate

import pytest

from adapter.errors import ConfigError, FatalDeliveryError, RetriableDeliveryError
from tests.integration.connector_helpers import destination, items, observation, patient
from tests.peers.fault_server import Answer, FaultServer, outcome
from tests.peers.fixtures import TlsFiles


def _send_one(server: FaultServer, **settings: object):
    dest = destination("fhir", {"base_url": server.base_url, **settings})
    try:
        [result] = dest.send(items(observation("o1")))
    finally:
        dest.close()
    return result


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retriable(fault_server: FaultServer, status: int) -> None:
    fault_server.plan(Answer(status))
    result = _send_one(fault_server)
    assert not result.ok
    assert isinstance(result.error, RetriableDeliveryError)
    assert result.status == status
    assert result.error.retry_after is None


def test_503_retry_after_seconds_is_parsed(fault_server: FaultServer) -> None:
    fault_server.plan(Answer(503, headers={"Retry-After": "7"}))
    result = _send_one(fault_server)
    assert isinstance(result.error, RetriableDeliveryError)
    assert result.error.retry_after == 7.0


def test_429_retry_after_date_is_parsed(fault_server: FaultServer) -> None:
    when = formatdate(time.time() + 120, usegmt=True)
    fault_server.plan(Answer(429, headers={"Retry-After": when}))
    result = _send_one(fault_server)
    assert isinstance(result.error, RetriableDeliveryError)
    assert result.status == 429
    assert 100 < result.error.retry_after <= 121


def test_400_with_operation_outcome_is_fatal_and_keeps_it(fault_server: FaultServer) -> None:
    refusal = outcome("invalid", "Observation.status: unknown code 'finale'")
    fault_server.plan(Answer(400, body=refusal))
    result = _send_one(fault_server)
    assert isinstance(result.error, FatalDeliveryError)
    assert result.status == 400
    assert result.error.outcome_body == refusal
    assert "unknown code" in result.error.message


def test_connection_refused_is_retriable(fault_server: FaultServer) -> None:
    fault_server.down()
    result = _send_one(fault_server, connect_timeout_seconds=2)
    assert isinstance(result.error, RetriableDeliveryError)
    assert "cannot connect" in result.error.message
    fault_server.up()
    assert _send_one(fault_server).ok


def test_connection_dropped_mid_request_is_retriable(fault_server: FaultServer) -> None:
    fault_server.plan(Answer(drop=True))
    result = _send_one(fault_server)
    assert isinstance(result.error, RetriableDeliveryError)
    assert len(fault_server.requests) == 1


def test_read_timeout_is_retriable(fault_server: FaultServer) -> None:
    fault_server.plan(Answer(delay=1.5))
    started = time.perf_counter()
    result = _send_one(fault_server, timeout_seconds=0.3)
    assert isinstance(result.error, RetriableDeliveryError)
    assert "read timeout" in result.error.message
    assert time.perf_counter() - started < 1.4  # it did not wait for the late answer


def test_batch_entry_errors_are_sorted_entry_by_entry(fault_server: FaultServer) -> None:
    fault_server.plan(Answer(entry_status={"Observation/o2": 422, "Observation/o3": 429}))
    dest = destination("fhir", {"base_url": fault_server.base_url, "bundle": "batch"})
    try:
        results = dest.send(items(patient("p1"), observation("o2"), observation("o3")))
    finally:
        dest.close()
    assert results[0].ok
    assert isinstance(results[1].error, FatalDeliveryError) and results[1].status == 422
    assert results[1].error.outcome_body["issue"][0]["diagnostics"] == "Observation/o2 refused"
    assert isinstance(results[2].error, RetriableDeliveryError) and results[2].status == 429


def test_an_answer_that_is_no_bundle_is_retriable(fault_server: FaultServer) -> None:
    fault_server.plan(Answer(200, body={"resourceType": "OperationOutcome", "issue": []}))
    result = _send_one(fault_server)
    assert isinstance(result.error, RetriableDeliveryError)
    assert "one entry per request" in result.error.message


# -- credentials ------------------------------------------------------------------------------
def test_bearer_token_from_the_environment(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSPITAL_TOKEN", "s3cret")
    fault_server.require_auth = ("bearer", "s3cret")
    assert _send_one(fault_server, auth={"type": "bearer", "token_env": "HOSPITAL_TOKEN"}).ok
    assert fault_server.requests[-1].headers["Authorization"] == "Bearer s3cret"
    refused = _send_one(fault_server, auth={"type": "bearer", "token": "wrong"})
    # a credential problem is the destination's, not the item's: retriable
    assert isinstance(refused.error, RetriableDeliveryError) and refused.status == 401


def test_basic_credentials(fault_server: FaultServer, tmp_path) -> None:
    fault_server.require_auth = ("basic", "adapter", "pa:ss")
    secret = tmp_path / "password"
    secret.write_text("pa:ss\n")
    assert _send_one(
        fault_server, auth={"type": "basic", "username": "adapter", "password_file": str(secret)}
    ).ok
    assert not _send_one(
        fault_server, auth={"type": "basic", "username": "adapter", "password": "nope"}
    ).ok


def _oauth2(server: FaultServer, **extra: object) -> dict[str, object]:
    return {
        "type": "oauth2",
        "token_url": server.token_url,
        "client_id": "adapter",
        "client_secret_env": "HOSPITAL_CLIENT_SECRET",
        **extra,
    }


def test_oauth2_token_is_cached_and_renewed_after_401(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSPITAL_CLIENT_SECRET", fault_server.client_secret)
    fault_server.require_auth = ("oauth2",)
    dest = destination("fhir", {"base_url": fault_server.base_url, "auth": _oauth2(fault_server)})
    try:
        assert dest.send(items(observation("o1")))[0].ok
        assert dest.send(items(observation("o2")))[0].ok
        assert len(fault_server.token_requests) == 1  # cached between sends
        assert fault_server.token_requests[0]["grant_type"] == "client_credentials"
        fault_server.revoke_tokens()
        assert dest.send(items(observation("o3")))[0].ok  # 401, new token, same request again
        assert len(fault_server.token_requests) == 2
    finally:
        dest.close()
    auth = [r.headers["Authorization"] for r in fault_server.requests]
    assert auth == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_oauth2_token_is_renewed_before_it_expires(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSPITAL_CLIENT_SECRET", fault_server.client_secret)
    fault_server.require_auth = ("oauth2",)
    fault_server.token_lifetime = 1
    dest = destination(
        "fhir",
        {
            "base_url": fault_server.base_url,
            "auth": _oauth2(fault_server, client_auth="post", scope="system/*.write"),
        },
    )
    try:
        assert dest.send(items(observation("o1")))[0].ok
        time.sleep(0.6)  # past half of the 1 s lifetime: renewed without a 401
        assert dest.send(items(observation("o2")))[0].ok
    finally:
        dest.close()
    assert len(fault_server.token_requests) == 2
    assert fault_server.token_requests[0]["client_id"] == "adapter"
    assert fault_server.token_requests[0]["scope"] == "system/*.write"
    assert [r.headers["Authorization"] for r in fault_server.requests] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_oauth2_bad_client_secret_is_retriable(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSPITAL_CLIENT_SECRET", "wrong")
    result = _send_one(fault_server, auth=_oauth2(fault_server))
    assert isinstance(result.error, RetriableDeliveryError)
    assert "token endpoint" in result.error.message
    assert fault_server.requests == []  # nothing sent without a token


# -- settings are checked when the destination is built ------------------------------------
def test_a_typo_in_settings_names_the_destination_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        destination("fhir", {"base_url": "http://127.0.0.1:1/fhir", "batch_sise": 10})
    assert caught.value.key == "destinations.hospital.settings.batch_sise"
    assert "unknown setting" in caught.value.message


def test_a_missing_secret_variable_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        destination(
            "fhir",
            {
                "base_url": "http://127.0.0.1:1/fhir",
                "auth": {"type": "bearer", "token_env": "NO_SUCH_TOKEN"},
            },
        )
    assert caught.value.key == "destinations.hospital.settings.auth.token_env"
    assert "NO_SUCH_TOKEN" in caught.value.message


def test_unknown_auth_type_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        destination("fhir", {"base_url": "http://x/fhir", "auth": {"type": "kerberos"}})
    assert caught.value.key.startswith("destinations.hospital.settings.auth")
    with pytest.raises(ConfigError) as caught:
        destination("fhir", {"base_url": "ftp://x/fhir"})
    assert caught.value.key == "destinations.hospital.settings.base_url"
    with pytest.raises(ConfigError):
        destination("fhir", {"base_url": "http://x/fhir", "bundle": "collection"})


# -- TLS --------------------------------------------------------------------------------------
def _tls_server(files: TlsFiles, *, require_client: bool) -> FaultServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files.ca)
    return FaultServer(tls=context).start()


def test_tls_is_verified_by_default(tls_files: TlsFiles) -> None:
    server = _tls_server(tls_files, require_client=False)
    try:
        refused = _send_one(server)
        assert isinstance(refused.error, RetriableDeliveryError)
        assert "CERTIFICATE_VERIFY_FAILED" in refused.error.message
        assert _send_one(server, tls={"ca_file": str(tls_files.ca)}).ok
        assert _send_one(server, tls={"verify": False}).ok
    finally:
        server.stop()


def test_mutual_tls_client_certificate(tls_files: TlsFiles) -> None:
    server = _tls_server(tls_files, require_client=True)
    try:
        without = _send_one(server, tls={"ca_file": str(tls_files.ca)})
        assert isinstance(without.error, RetriableDeliveryError)
        assert server.requests == []
        with_cert = _send_one(
            server,
            tls={
                "ca_file": str(tls_files.ca),
                "client_cert": str(tls_files.client_cert),
                "client_key": str(tls_files.client_key),
            },
        )
        assert with_cert.ok, with_cert.error
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_missing_certificate_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        destination(
            "fhir",
            {"base_url": "https://x/fhir", "tls": {"client_cert": str(tmp_path / "none.pem")}},
        )
    assert caught.value.key == "destinations.hospital.settings.tls"
    assert "none.pem" in caught.value.message


# -- concurrency ------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [1, 3])
def test_requests_in_flight_never_exceed_max_concurrency(
    fault_server: FaultServer, limit: int
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fault_server.default = Answer(delay=0.15)
    dest = destination("fhir", {"base_url": fault_server.base_url, "max_concurrency": limit})
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            batches = [items(observation(f"o{n}"), first_id=n) for n in range(6)]
            results = [r for rs in pool.map(dest.send, batches) for r in rs]
    finally:
        dest.close()
    assert all(r.ok for r in results)
    assert fault_server.max_in_flight == limit
    assert len({r.client_port for r in fault_server.requests}) <= limit  # pooled connections
