"""Starting the service as a real process on loopback (tests, benchmarks, load checks)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceDidNotStart(RuntimeError):
    pass


def start_service(database_url: str, clients_file: str | Path | None, *, workers: int = 2,
                  env: dict[str, str] | None = None, wait_for: str = "/readyz",
                  timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """``ggop-adapter serve`` on a free loopback port in its own process group; returns the
    process and its base URL once ``wait_for`` answers 200."""
    port = free_port()
    full_env = {**os.environ, "ADAPTER_DATABASE_URL": database_url, **(env or {})}
    if clients_file is not None:
        full_env["ADAPTER_CLIENTS_FILE"] = str(clients_file)
    proc = subprocess.Popen([sys.executable, "-m", "adapter", "serve", "--port", str(port), "--workers", str(workers)],
                            cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(base + wait_for, timeout=1).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    kill_service(proc)
    raise ServiceDidNotStart(f"the service did not answer {wait_for} within {timeout:.0f} s")


def stop_service(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Graceful stop (SIGTERM to the process group); SIGKILL when it does not stop in time."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        kill_service(proc)


def kill_service(proc: subprocess.Popen) -> None:
    """kill -9 of the master and its workers: no shutdown at all."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


class LoggedProcess:
    """A server process the tests start, with its log file: the log's tail for an error
    message, and a stop that is safe to call twice."""

    proc: subprocess.Popen | None
    log_path: Path
    stop_timeout: float = 30.0

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            stop_service(self.proc, timeout=self.stop_timeout)
        self.proc = None
