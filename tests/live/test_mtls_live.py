"""mTLS through the real server (``adapter serve`` with ``ADAPTER_TLS_*``): a client whose
certificate is registered in the consortium file gets a token with no secret (RFC 8705
``tls_client_auth``), the token is bound to that certificate, and a certificate that is
not the client's, or from another CA, gets nothing. Certificates are made here with
``cryptography``; the handshake is Python's ``ssl`` on both sides, on loopback."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from adapter.auth.keys import new_key_file
from tests.api.auth_helpers import COUNTY, SHIQIAO, consortium_with_clients, secret_of
from tests.live.server import LiveServer
from tests.pki import Pair, fingerprint, make, name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    folder = tmp_path_factory.mktemp("pki")
    ca_name = name("青山县医共体 CA")
    (ca, _, ca_key) = make(folder, "ca", ca_name, None, ca=True)
    issuer = (ca_name, ca_key)
    made = {"ca": ca}
    made["server"] = make(folder, "server", name("adapter"), issuer, server=True)[0]
    made["lis"], lis_cert, _ = make(folder, "lis", name("shiqiao-lis"), issuer)
    made["reader"] = make(folder, "reader", name("county-his"), issuer)[0]
    made["stranger"] = make(folder, "stranger", name("stranger"), issuer)[0]
    other_name = name("another CA")
    (_, _, other_key) = make(folder, "other-ca", other_name, None, ca=True)
    made["foreign"] = make(folder, "foreign", name("shiqiao-lis"), (other_name, other_key))[0]
    (folder / "lis.sha256").write_text(fingerprint(lis_cert))
    return made


def _config(folder: Path, pki: dict[str, Pair]) -> Path:
    path = consortium_with_clients(folder)
    fingerprint = (pki["lis"][0].parent / "lis.sha256").read_text()
    extra = (
        "  - id: shiqiao-lis-cert\n"
        f"    facility: {SHIQIAO}\n"
        "    roles: [source, reader]\n"
        "    certificate:\n"
        f"      sha256: '{fingerprint}'\n"
        "  - id: county-his-cert\n"
        f"    facility: {COUNTY}\n"
        "    roles: [reader]\n"
        "    certificate:\n"
        "      subject: 'O=青山县医共体,CN=county-his'\n"
    )
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Pair]
):
    folder = tmp_path_factory.mktemp("mtls")
    key = folder / "token-key.pem"
    new_key_file(key)
    env = {
        "ADAPTER_AUTH": "on",
        "ADAPTER_AUTH_SIGNING_KEY": str(key),
        "ADAPTER_CONFIG": str(_config(folder, pki)),
        "ADAPTER_TLS_CERT_FILE": str(pki["server"][0]),
        "ADAPTER_TLS_KEY_FILE": str(pki["server"][1]),
        "ADAPTER_TLS_CLIENT_CA_FILE": str(pki["ca"][0]),
    }
    with LiveServer(module_database_url, folder, env=env, ca=pki["ca"][0]) as live:
        yield live


def _token_with_cert(server: LiveServer, cert: Pair | None, client_id: str) -> httpx.Response:
    return httpx.post(
        server.url("/auth/token"),
        data={"grant_type": "client_credentials", "client_id": client_id},
        verify=server.tls(cert),
    )


def test_a_registered_certificate_gets_a_bound_token(
    server: LiveServer, pki: dict[str, Pair]
) -> None:
    answer = _token_with_cert(server, pki["lis"], "shiqiao-lis-cert")
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with_cert = httpx.get(
        server.url("/fhir/Patient"), headers=headers, verify=server.tls(pki["lis"])
    )
    assert with_cert.status_code == 200, with_cert.text
    # the same token over a connection without the certificate, or with another one
    bare = httpx.get(server.url("/fhir/Patient"), headers=headers, verify=server.tls())
    assert bare.status_code == 401
    assert "bound to a client certificate" in bare.text
    other = httpx.get(
        server.url("/fhir/Patient"), headers=headers, verify=server.tls(pki["reader"])
    )
    assert other.status_code == 401


def test_a_client_registered_by_subject(server: LiveServer, pki: dict[str, Pair]) -> None:
    answer = _token_with_cert(server, pki["reader"], "county-his-cert")
    assert answer.status_code == 200, answer.text
    # its certificate does not make it another client
    assert _token_with_cert(server, pki["reader"], "shiqiao-lis-cert").status_code == 401


def test_other_certificates_get_nothing(server: LiveServer, pki: dict[str, Pair]) -> None:
    stranger = _token_with_cert(server, pki["stranger"], "shiqiao-lis-cert")
    assert stranger.status_code == 401
    assert stranger.json()["error"] == "invalid_client"
    # no certificate and no secret: nothing proves the client
    assert _token_with_cert(server, None, "shiqiao-lis-cert").status_code == 400
    # a certificate of another CA does not get through the handshake (or is refused at once)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        _token_with_cert(server, pki["foreign"], "shiqiao-lis-cert")


def test_secret_clients_still_work_over_https(server: LiveServer) -> None:
    answer = httpx.post(
        server.url("/auth/token"),
        data={
            "grant_type": "client_credentials",
            "client_id": "county-reader",
            "client_secret": secret_of("county-reader"),
        },
        verify=server.tls(),
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    read = httpx.get(
        server.url("/fhir/Patient"),
        headers={"Authorization": f"Bearer {token}"},
        verify=server.tls(),
    )
    assert read.status_code == 200
    # plain HTTP is not spoken on the HTTPS port
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=5)


def test_tls_settings_are_checked_at_start(tmp_path: Path) -> None:
    from adapter.api.server import tls_options
    from adapter.errors import ConfigError
    from adapter.settings import Settings

    with pytest.raises(ConfigError, match="needs ADAPTER_TLS_CERT_FILE"):
        tls_options(Settings(tls_client_ca_file=tmp_path / "ca.pem"))
    assert tls_options(Settings()) == {}
    options = tls_options(
        Settings(
            tls_cert_file=tmp_path / "c.pem",
            tls_key_file=tmp_path / "k.pem",
            tls_client_ca_file=tmp_path / "ca.pem",
        )
    )
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
