"""A real ``adapter serve`` process on a free loopback port, for tests that must go through
the actual HTTP server (uvicorn, its timeouts and limits), not the in-process test client.

    with LiveServer(database_url, tmp_path) as server:
        httpx.post(server.url("/ingest"), ...)
        server.log_text()   # what the server logged (stdout + stderr)
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        start_timeout: float = 120.0,  # a loaded machine (2 cores, parallel runs) is slow
        ca: Path | None = None,  # HTTPS: the CA that signed the server's certificate
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.port = free_port()
        self.extra_env = env or {}
        self.extra_args = args or []
        self.start_timeout = start_timeout
        self.ca = ca
        self.log_path = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def tls(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the server's CA, presenting ``cert`` if given."""
        assert self.ca is not None
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return context

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
        env.update(
            {
                "ADAPTER_DATABASE_URL": self.database_url,
                "ADAPTER_BASE_URL": f"{self.base_url}/fhir",
                "PYTHONUNBUFFERED": "1",
                "ADAPTER_AUTH": "off",  # tests about authentication give "on" in env
            }
        )
        env.update(self.extra_env)
        command = [sys.executable, "-m", "adapter.cli", "serve", "--port", str(self.port)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command + self.extra_args,
            cwd=self.workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"adapter serve exited at start:\n{self.log_text()}")
            try:
                verify = self.tls() if self.ca is not None else True
                if httpx.get(self.url("/health"), timeout=1.0, verify=verify).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"adapter serve did not answer /health:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
