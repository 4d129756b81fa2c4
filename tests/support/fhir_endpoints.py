"""Endpoints for the delivery tests and the benchmark (not used by the service itself).

- :class:`FhirServer`: a real FHIR R4 server process on loopback — ``sekmet-fhir`` from PyPI,
  version pinned, installed on first use in its own virtual environment under the project's
  ``build/fhir-server-venv`` (never in the adapter's environment), started with its hospital
  simulator off, a bearer token required, its data in a folder of the caller's choosing.
- :class:`StubEndpoint`: a tiny HTTP endpoint for fault injection that the real server
  cannot do on demand (503 with Retry-After, 400 with an OperationOutcome, a reply held back
  while a worker is killed); it counts requests and can forward to a real server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from tests.support.service_process import LoggedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
SEKMET_PACKAGE = "sekmet-fhir"
SEKMET_VERSION = "0.1.1"
VENV = REPO / "build" / "fhir-server-venv"


class FhirServerUnavailable(RuntimeError):
    """The FHIR server cannot be installed or started here (the reason says why)."""


def install_sekmet(venv: Path = VENV) -> Path:
    """The ``sekmet`` command of a virtual environment holding exactly the pinned version."""
    exe = venv / "bin" / "sekmet"
    stamp = venv / f".{SEKMET_PACKAGE}-{SEKMET_VERSION}"
    if exe.exists() and stamp.exists():
        return exe
    python = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"{SEKMET_PACKAGE}=={SEKMET_VERSION}"], check=True, capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise FhirServerUnavailable(f"cannot install {SEKMET_PACKAGE}=={SEKMET_VERSION} into {venv}: "
                                    f"{type(exc).__name__} {detail.decode(errors='replace')[-500:]}") from None
    if not exe.exists():
        raise FhirServerUnavailable(f"{SEKMET_PACKAGE} installed no 'sekmet' command in {venv}")
    stamp.write_text(SEKMET_VERSION + "\n")
    return exe


class FhirServer(LoggedProcess):
    """``sekmet serve`` on 127.0.0.1:<port>, simulator off, bearer token required."""

    stop_timeout = 20.0

    def __init__(self, data_dir: Path, *, port: int | None = None, token: str = "municipality-token"):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.token = token
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"}

    def start(self, timeout: float = 90.0) -> FhirServer:
        exe = install_sekmet()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "settings.yaml"
        config.write_text(json.dumps({  # JSON is YAML
            "base_url": self.base_url, "host": "127.0.0.1", "port": self.port,
            "data_dir": str(self.data_dir / "data"), "own_private_key_path": str(self.data_dir / "keys" / "own.pem"),
            "simulator": {"enabled": False}, "log_inbound": False,
            "server_auth": {"types": ["bearer"], "tokens": [self.token]},
        }))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
        env["SEKMET_CONFIG"] = str(config)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([str(exe), "serve", "--config", str(config)], cwd=self.data_dir, env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FhirServerUnavailable(f"sekmet exited with {self.proc.returncode}: {self.tail(800)}")
            try:
                if requests.get(self.base_url + "/metadata", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise FhirServerUnavailable(f"sekmet did not answer on {self.base_url} within {timeout:g} s: {self.tail(800)}")

    def get(self, path: str, **params) -> dict:
        resp = requests.get(f"{self.base_url}/{path}", params=params, headers=self.headers, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def status(self, path: str) -> int:
        return requests.get(f"{self.base_url}/{path}", headers=self.headers, timeout=30).status_code

    def __enter__(self) -> FhirServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# A stub endpoint for fault injection
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hold: threading.Event | None = None  # answer only once this is set


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: dict | None


def _ok_reply(path: str, body: dict | None) -> Reply:
    if path.endswith("$process-message"):
        header = (((body or {}).get("entry") or [{}])[0] or {}).get("resource") or {}
        return Reply(200, {"resourceType": "Bundle", "type": "message", "entry": [{"resource": {
            "resourceType": "MessageHeader", "id": "stub-response",
            "eventUri": header.get("eventUri"), "source": {"endpoint": "http://stub"},
            "response": {"identifier": header.get("id", ""), "code": "ok"}}}]})
    entries = (body or {}).get("entry") or []
    return Reply(200, {"resourceType": "Bundle", "type": "transaction-response",
                       "entry": [{"response": {"status": "201 Created"}} for _ in entries]})


class StubEndpoint:
    """Answers POSTs from ``script`` (one Reply per request, in order), then with 200 — or
    forwards to ``upstream`` (a real FHIR base URL, with ``upstream_headers``)."""

    def __init__(self, script: list[Reply] | None = None, *, upstream: str | None = None,
                 upstream_headers: dict | None = None, delay: float = 0.0, port: int = 0):
        self.script = list(script or [])
        self.upstream = upstream
        self.upstream_headers = upstream_headers or {}
        self.delay = delay
        self.seen: list[Seen] = []
        self.completed = 0  # answers with 2xx actually written
        self._lock = threading.Lock()
        self.arrived = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add 40 ms to every answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args):  # quiet
                return

            def do_GET(self):
                with stub._lock:
                    stub.seen.append(Seen("GET", self.path, dict(self.headers), None))
                if self.path.rstrip("/").endswith("/metadata"):
                    self._send(Reply(200, {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
                                           "software": {"name": "stub"}}))
                else:
                    self._send(Reply(404, {"resourceType": "OperationOutcome",
                                           "issue": [{"severity": "error", "code": "not-found"}]}))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with stub._lock:
                    stub.seen.append(Seen("POST", self.path, dict(self.headers), body))
                    reply = stub.script.pop(0) if stub.script else None
                stub.arrived.set()
                if reply is None:
                    if stub.delay:
                        time.sleep(stub.delay)
                    reply = stub._forward(self.path, raw) if stub.upstream else _ok_reply(self.path, body)
                if reply.hold is not None:
                    reply.hold.wait(60)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status == 200 and reply.body is None:
                    reply = stub._forward(self.path, raw) if stub.upstream else _ok_reply(self.path, body)
                self._send(reply)

            def _send(self, reply: Reply):
                data = json.dumps(reply.body).encode() if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    return  # the client went away (a killed worker)
                if 200 <= reply.status < 300 and self.command == "POST":
                    with stub._lock:
                        stub.completed += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, path: str, raw: bytes) -> Reply:
        base = self.upstream.rstrip("/")
        suffix = path.split("/fhir", 1)[1] if "/fhir" in path else path
        resp = requests.post(base + suffix, data=raw, timeout=60,
                             headers={"Content-Type": "application/fhir+json", **self.upstream_headers})
        try:
            body = resp.json()
        except ValueError:
            body = None
        return Reply(resp.status_code, body)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    @property
    def posts(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "POST"]

    def start(self) -> StubEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> StubEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
