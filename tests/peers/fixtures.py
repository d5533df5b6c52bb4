"""pytest fixtures for the test peers: the Medplum FHIR server, the fault server, the MLLP
receiver, and TLS certificates. Imported by tests/integration/conftest.py.

The Medplum server is a Node program (tests/tools/medplum): its npm packages are installed
into tests/tools/medplum/node_modules on first use (``npm ci``, pinned by the lock file),
once for all pytest-xdist workers. Without node or npm the tests that need it FAIL with a
message saying what to install: they are never skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers.fault_server import FaultServer
from tests.peers.mllp_peer import MllpPeer

MEDPLUM_DIR = Path(__file__).resolve().parents[1] / "tools" / "medplum"
MEDPLUM_VERSION = "4.5.2"
NODE_MAJOR_MIN = 20


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: the FHIR test peer (Medplum, tests/tools/medplum) "
            f"needs Node.js >= {NODE_MAJOR_MIN} with npm (Debian: apt-get install nodejs "
            "npm)",
            pytrace=False,
        )
    return path


def _installed() -> bool:
    for package in ("core", "fhir-router", "definitions"):
        manifest = MEDPLUM_DIR / "node_modules" / "@medplum" / package / "package.json"
        try:
            if json.loads(manifest.read_text())["version"] != MEDPLUM_VERSION:
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


def install_medplum() -> Path:
    """npm ci into tests/tools/medplum once (a file lock serialises xdist workers)."""
    node = _need("node")
    npm = _need("npm")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MAJOR_MIN:
        pytest.fail(
            f"node {version or '?'} is too old for the Medplum test peer: it needs "
            f">= {NODE_MAJOR_MIN}",
            pytrace=False,
        )
    lock_path = Path(tempfile.gettempdir()) / "yigongti-medplum-install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=MEDPLUM_DIR,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    "npm ci in tests/tools/medplum failed:\n" + (done.stdout + done.stderr)[-3000:],
                    pytrace=False,
                )
    return MEDPLUM_DIR


@dataclass
class Medplum:
    """A running Medplum test server."""

    base_url: str  # http://127.0.0.1:PORT/fhir
    process: subprocess.Popen[str]

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/fhir")

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.root + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._call("POST", "/$reset")

    def snapshot(self) -> None:
        self._call("POST", "/$snapshot")

    def restore(self) -> None:
        self._call("POST", "/$restore")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/$requests")

    def get(self, path: str) -> Any:
        """GET a FHIR URL relative to the base; the parsed JSON (also for 4xx answers)."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/{path}", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def count(self, resource_type: str, query: str = "") -> int:
        """How many resources of a type the server holds (a search's total)."""
        bundle = self.get(f"{resource_type}?_summary=count{'&' + query if query else ''}")
        return int(bundle["total"])


def start_medplum() -> Medplum:
    install_medplum()
    node = _need("node")
    process = subprocess.Popen(
        [node, "server.mjs", "--host", "127.0.0.1", "--port", "0"],
        cwd=MEDPLUM_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    first = line[0].strip() if line else ""
    if not first.startswith("listening "):
        process.kill()
        rest = process.stdout.read() if process.poll() is not None else ""
        pytest.fail(
            f"the Medplum test server did not start: {first}\n{rest[-2000:]}", pytrace=False
        )
    # drain its output so that it never blocks on a full pipe
    threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
    return Medplum(first.split(" ", 1)[1], process)


@pytest.fixture(scope="session")
def medplum_server() -> Iterator[Medplum]:
    server = start_medplum()
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
        if server.process.stdout is not None:
            server.process.stdout.close()


@pytest.fixture
def medplum(medplum_server: Medplum) -> Medplum:
    """The Medplum server, emptied for this test."""
    medplum_server.reset()
    return medplum_server


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mllp_peer() -> Iterator[MllpPeer]:
    peer = MllpPeer().start()
    try:
        yield peer
    finally:
        peer.stop()


@dataclass
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (needed to make test certificates)", pytrace=False)
    done = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"openssl {' '.join(args[:2])} failed: {done.stderr[-1000:]}", pytrace=False)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=adapter test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN=adapter test {name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    os.chmod(d / "client.key", 0o600)
    return TlsFiles(
        d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key"
    )
