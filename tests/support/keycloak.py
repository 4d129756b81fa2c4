"""A real OpenID provider for the OAuth integration test: Keycloak on loopback.

The distribution (``org.keycloak:keycloak-quarkus-dist``, zip) comes from Maven Central through
Maven, with the project's Maven cache in ``build/m2`` (as the HAPI FHIR validator's), and is
unpacked once into ``build/keycloak/keycloak-<version>/``; later runs reuse it. Keycloak is
started with ``kc.sh start-dev`` on 127.0.0.1, an in-memory database (nothing kept between
runs) and an admin bootstrapped by environment variables, and set up through its admin REST
API. It needs Java 17+ (the ``java`` on the path, or ``$JAVA_HOME``; else one from
``/usr/lib/jvm`` is given to the Keycloak process only). :class:`KeycloakUnavailable` says why
Java or the distribution cannot be had; the tests skip with it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from tests.support.service_process import LoggedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
KEYCLOAK_VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
BUILD = REPO / "build" / "keycloak"
HOME = BUILD / f"keycloak-{KEYCLOAK_VERSION}"
M2 = REPO / "build" / "m2"
MIN_JAVA = 17


class KeycloakUnavailable(RuntimeError):
    """Java 17+ or the Keycloak distribution cannot be had here (the reason says why)."""


class KeycloakDidNotStart(RuntimeError):
    pass


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_java_home() -> str | None:
    """None when the default Java (``$JAVA_HOME`` or ``java`` on the path) is new enough; else
    a JAVA_HOME for the Keycloak process. KeycloakUnavailable when there is none."""
    home = os.environ.get("JAVA_HOME")
    default = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if default and (java_major(default) or 0) >= MIN_JAVA:
        return None
    for candidate in sorted(Path("/usr/lib/jvm").glob("*/bin/java")):
        if (java_major(str(candidate)) or 0) >= MIN_JAVA:
            return str(candidate.parent.parent)
    raise KeycloakUnavailable(f"Keycloak {KEYCLOAK_VERSION} needs Java {MIN_JAVA}+; "
                              f"found {'an older ' + default if default else 'no java'}")


def install(home: Path = HOME) -> Path:
    """``build/keycloak/keycloak-<version>``, unpacked from Maven Central on first use."""
    stamp = home / ".unpacked"
    if stamp.exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KeycloakUnavailable(f"Keycloak {KEYCLOAK_VERSION} is not unpacked in {home} and Maven (mvn) "
                                  "is not installed to fetch it")
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD, prefix=".unpack-") as tmp:
        try:
            proc = subprocess.run([mvn, "-q", "-B", f"-Dmaven.repo.local={M2}", "dependency:unpack",
                                   f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={tmp}"],
                                  cwd=tmp, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            raise KeycloakUnavailable(f"fetching {ARTIFACT} with Maven failed: {type(exc).__name__}") from None
        unpacked = Path(tmp) / home.name
        if proc.returncode != 0 or not (unpacked / "bin" / "kc.sh").exists():
            tail = (proc.stdout + proc.stderr).strip()[-800:]
            raise KeycloakUnavailable(f"fetching {ARTIFACT} with Maven failed (exit {proc.returncode}): {tail}")
        for script in (unpacked / "bin").glob("*.sh"):
            script.chmod(0o755)
        (unpacked / ".unpacked").write_text(ARTIFACT + "\n")
        if home.exists():  # a half-unpacked earlier attempt
            shutil.rmtree(home)
        try:
            unpacked.rename(home)
        except OSError:
            if not stamp.exists():  # not another process unpacking at the same time
                raise
    return home


class Keycloak(LoggedProcess):
    """``kc.sh start-dev`` on 127.0.0.1:<free port>; the admin REST API for set-up."""

    def __init__(self, workdir: Path, *, port: int | None = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.admin_user = "admin"
        self.admin_password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "keycloak.log"
        self.started_in: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issuer(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

    def jwks_url(self, realm: str) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/certs"

    def token_url(self, realm: str) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/token"

    def start(self, timeout: float = 300.0) -> Keycloak:
        java_home = find_java_home()
        home = install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
        env.update(KC_BOOTSTRAP_ADMIN_USERNAME=self.admin_user, KC_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
                   JAVA_OPTS_KC_HEAP="-Xms128m -Xmx1g")
        if java_home:
            env["JAVA_HOME"] = java_home
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", str(home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem", "--http-host=127.0.0.1",
                 f"--http-port={self.port}", f"--http-management-port={free_port()}"],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise KeycloakDidNotStart(f"Keycloak exited with {self.proc.returncode}: {self.tail()}")
            try:
                if requests.get(self.issuer("master"), timeout=2).status_code == 200:
                    self.started_in = time.monotonic() - started
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise KeycloakDidNotStart(f"Keycloak did not answer on {self.base_url} within {timeout:g} s: {self.tail()}")

    def __enter__(self) -> Keycloak:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------
    # Admin REST API
    # ----------------------------------------------------------------------------------------

    def _admin_headers(self) -> dict:
        r = requests.post(self.token_url("master"), timeout=30, data={
            "grant_type": "password", "client_id": "admin-cli",
            "username": self.admin_user, "password": self.admin_password})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def create_realm(self, realm: str) -> None:
        r = requests.post(f"{self.base_url}/admin/realms", headers=self._admin_headers(), timeout=60,
                          json={"realm": realm, "enabled": True})
        r.raise_for_status()

    def create_client(self, realm: str, client_id: str, *, audience: str | None = None) -> str:
        """A confidential client with the client-credentials grant (a service account) and,
        with ``audience``, an audience mapper putting it into the access token's ``aud``;
        returns its secret."""
        secret = secrets.token_urlsafe(24)
        body: dict = {
            "clientId": client_id, "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "secret": secret, "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "directAccessGrantsEnabled": False, "implicitFlowEnabled": False,
        }
        if audience:
            body["protocolMappers"] = [{
                "name": "adapter-audience", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
                "config": {"included.custom.audience": audience, "access.token.claim": "true",
                           "id.token.claim": "false", "introspection.token.claim": "true"},
            }]
        r = requests.post(f"{self.base_url}/admin/realms/{realm}/clients", headers=self._admin_headers(),
                          json=body, timeout=60)
        r.raise_for_status()
        return secret

    def client_credentials_token(self, realm: str, client_id: str, secret: str) -> str:
        r = requests.post(self.token_url(realm), timeout=30, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token
