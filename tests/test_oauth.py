"""OAuth 2.0 bearer tokens (JWTs) beside the static tokens: keys made here, served as a JWKS
by a small HTTP server on 127.0.0.1 (real HTTP), tokens signed with them, and the API's answer
to each: accepted into the usual access control, or refused with 401, ``invalid_token`` and
only a reason category in the log; 503 with Retry-After when the JWKS cannot be had."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from tests.support import TEST_ID_KEY
from tests.support.fhir_world import CLIENTS, ODENSE, UTC, Clock, load_store, search_all, write_clients

from adapter.api.auth import looks_like_jwt, token_hash
from adapter.api.oauth import BoundedJwksClient, OAuthValidator, TokenRefused, load_oauth, load_oauth_clients
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.store.engine import open_store

ISSUER = "https://login.region.test/realms/ggop"
AUDIENCE = "https://ggop-adapter.test/fhir"
OAUTH_CLIENTS = """\
- client_id: odense-system
  role: municipality
  municipality: "461"
- client_id: aalborg-system
  role: municipality
  municipality: "0851"
- client_id: drift-system
  role: operator
- client_id: sygehus-system
  role: hospital
"""
JWT_SHAPED_STATIC = "c3RhdGlj.dG9rZW4.bGlzdGVk"  # a static token that happens to look like a JWT


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_A, KEY_B, STRANGER = _rsa(), _rsa(), _rsa()
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(key, kid: str, **extra) -> dict:
    public = key.public_key()
    algo = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    return {**json.loads(algo.to_jwk(public)), "kid": kid, "use": "sig", **extra}


def token(key=KEY_A, kid: str = "a", alg: str = "RS256", headers: dict | None = None, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()),
            "sub": "odense-system", "client_id": "odense-system", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, body: dict, sign=lambda signing_input: b"") -> str:
    """A token made by hand, as an attacker would (``alg: none``, HS256 with a public key)."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    return signing_input + "." + b64(sign(signing_input.encode()))


def claims(**extra) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "client_id": "odense-system", **extra}


# --------------------------------------------------------------------------------------------
# The issuer's JWKS over real HTTP
# --------------------------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        return  # a client that gave up (the slow-JWKS test) is expected


class JwksServer:
    """``GET /jwks`` answers ``keys`` as a JWK Set (or ``status`` / ``body`` when set)."""

    def __init__(self, keys: list[dict]):
        self.keys = keys
        self.status = 200
        self.body: bytes | None = None
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                return

            def do_GET(self):
                server.requests += 1
                data = server.body if server.body is not None else json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks():
    server = JwksServer([jwk(KEY_A, "a"), jwk(EC_KEY, "ec")])
    yield server
    server.close()


def make_app(tmp_path: Path, jwks_url: str, *, plans: bool = True, static: bool = True, **settings):
    from adapter.api.app import create_app
    from adapter.runtime import load_runtime

    url = f"sqlite:///{tmp_path}/adapter.db"
    engine = open_store(url)
    if plans:
        load_store(engine)
    oauth_clients = tmp_path / "oauth-clients.yaml"
    oauth_clients.write_text(OAUTH_CLIENTS, "utf-8")
    static_file = None
    if static:
        static_file = write_clients(tmp_path / "clients.yaml")
        with static_file.open("a", encoding="utf-8") as fh:
            fh.write(f"- name: jwt-shaped\n  role: operator\n  token_sha256: {token_hash(JWT_SHAPED_STATIC)}\n")
    config = {"id_key": TEST_ID_KEY, "database_url": url, "clients_file": str(static_file) if static_file else None,
              "oauth_issuer": ISSUER, "oauth_jwks_url": jwks_url, "oauth_audience": AUDIENCE,
              "oauth_clients_file": str(oauth_clients), **settings}
    app = create_app(load_runtime(Settings(**config), engine=engine), Clock(dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)))
    return app, engine


@pytest.fixture
def api(tmp_path, jwks):
    app, engine = make_app(tmp_path, jwks.url)
    yield app.test_client()
    engine.dispose()


def bearer(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


def task_ids(http, headers: dict) -> set[str]:
    _, matches = search_all(http, "/fhir/Task?_count=50", headers)
    return {t["id"] for t in matches}


# --------------------------------------------------------------------------------------------
# Accepted
# --------------------------------------------------------------------------------------------


def test_a_municipality_token_sees_only_its_municipality(api):
    odense = task_ids(api, bearer(token()))
    aalborg = task_ids(api, bearer(token(client_id="aalborg-system")))
    assert odense and aalborg and not odense & aalborg
    assert odense == task_ids(api, ODENSE)  # exactly what the static token of Odense sees
    assert aalborg == task_ids(api, {"Authorization": "Bearer tok-aalborg"})
    everything = task_ids(api, bearer(token(client_id="drift-system")))
    assert everything == odense | aalborg


def test_the_client_is_found_by_client_id_else_azp(api):
    tok = token(client_id=None, azp="aalborg-system")
    assert task_ids(api, bearer(tok)) == task_ids(api, {"Authorization": "Bearer tok-aalborg"})


def test_es256_an_audience_list_and_a_small_clock_skew_are_accepted(api):
    now = int(time.time())
    assert api.get("/fhir/Task", headers=bearer(token(EC_KEY, "ec", "ES256"))).status_code == 200
    tok = token(aud=["https://other.test", AUDIENCE], nbf=now + 10, iat=now + 10, exp=now - 10)
    assert api.get("/fhir/Task", headers=bearer(tok)).status_code == 200


def test_roles_flow_into_the_usual_access_control(api, tmp_path):
    hospital = bearer(token(client_id="sygehus-system"))
    assert api.get("/fhir/Task", headers=hospital).status_code == 403
    operator = bearer(token(client_id="drift-system"))
    task = next(iter(task_ids(api, operator)))
    r = api.put(f"/fhir/Task/{task}", headers={**operator, "If-Match": 'W/"1"'}, json={"resourceType": "Task"})
    assert r.status_code == 403


def test_a_hospital_token_may_push_to_medcom(api):
    from adapter.generate import generate_messages

    message = next(iter(generate_messages(1, seed=4711)))
    r = api.post("/medcom", data=message.xml, headers={**bearer(token(client_id="sygehus-system")),
                                                        "Content-Type": "application/xml"})
    assert r.status_code == 200, r.data[:300]
    assert b"XCTL03" in r.data or b"positive" in r.data.lower()
    refused = api.post("/medcom", data=message.xml, headers={**bearer(token(client_id="odense-system")),
                                                              "Content-Type": "application/xml"})
    assert refused.status_code == 403
    expired = api.post("/medcom", data=message.xml, headers={**bearer(token(client_id="sygehus-system", exp=1)),
                                                              "Content-Type": "application/xml"})
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"] == 'Bearer realm="ggop-adapter", error="invalid_token"'
    assert expired.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E901"


def test_static_tokens_still_work_beside_oauth(api, jwks):
    for tok, (_name, role, _m) in CLIENTS.items():
        status = api.get("/fhir/Task", headers=bearer(tok)).status_code
        assert status == (403 if role == "hospital" else 200), tok
    # a static token is checked first, even one shaped like a JWT: the JWKS is never asked
    assert api.get("/fhir/Task", headers=bearer(JWT_SHAPED_STATIC)).status_code == 200
    assert jwks.requests == 0
    r = api.get("/fhir/Task", headers=bearer("wrong-token"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert jwks.requests == 0  # not shaped like a JWT: no key is fetched for it
    assert api.get("/fhir/Task").headers["WWW-Authenticate"] == 'Bearer realm="ggop-adapter"'


def test_oauth_alone_needs_no_static_clients_file(tmp_path, jwks):
    app, engine = make_app(tmp_path, jwks.url, static=False, plans=False)
    http = app.test_client()
    assert http.get("/fhir/Task", headers=bearer(token())).status_code == 200
    assert http.get("/fhir/Task").status_code == 401
    r = http.post("/medcom", data=b"<x/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 401  # /medcom is not open: the OAuth clients are clients
    engine.dispose()


# --------------------------------------------------------------------------------------------
# Refused
# --------------------------------------------------------------------------------------------


def _public_pem() -> bytes:
    return KEY_A.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


REFUSED = {
    "expired": lambda: token(exp=int(time.time()) - 120),
    "not-yet-valid": lambda: token(nbf=int(time.time()) + 600),
    "issued-in-the-future": lambda: token(iat=int(time.time()) + 600),
    "audience": lambda: token(aud="https://someone-else.test/fhir"),
    "audience-list": lambda: token(aud=["https://a.test", "https://b.test"]),
    "issuer": lambda: token(iss="https://evil.test/realms/ggop"),
    "missing-exp": lambda: token(exp=None),
    "alg-none": lambda: forged({"alg": "none", "typ": "JWT", "kid": "a"}, claims()),
    "alg-none-no-kid": lambda: forged({"alg": "none"}, claims()),
    "hs256-public-key-as-secret": lambda: forged(
        {"alg": "HS256", "typ": "JWT", "kid": "a"}, claims(),
        lambda data: hmac.new(_public_pem(), data, hashlib.sha256).digest()),
    "key-not-in-jwks": lambda: token(STRANGER, kid="stranger"),
    "no-kid": lambda: jwt.encode(claims(), KEY_A, algorithm="RS256"),
    "signature": lambda: token(STRANGER, kid="a"),  # a known kid, signed by another key
    "tampered": lambda: _tampered(),
    "alg-not-the-keys": lambda: forged({"alg": "ES256", "kid": "a"}, claims(), lambda d: b"\0" * 64),
    "rs512": lambda: token(alg="RS512"),
    "unlisted-client": lambda: token(client_id="someone-else"),
    "no-client": lambda: token(client_id=None, azp=None),
    "header-not-json": lambda: "bm90IGpzb24.eyJzdWIiOiJ4In0.c2ln",
    "garbage": lambda: b64(b'{"alg": "RS256", "kid": "a"}') + ".bm90IGpzb24.c2ln",  # checked before its payload is read
}
REASONS = {"issued-in-the-future": "not-yet-valid", "audience-list": "audience", "missing-exp": "missing-claim", "alg-none": "algorithm",
           "alg-none-no-kid": "algorithm", "hs256-public-key-as-secret": "algorithm", "key-not-in-jwks": "key",
           "no-kid": "key", "tampered": "signature", "alg-not-the-keys": "algorithm", "rs512": "algorithm",
           "unlisted-client": "unknown-client", "garbage": "signature",
           "header-not-json": "malformed"}


def _tampered() -> str:
    header, _body, signature = token().split(".")
    return ".".join([header, b64(json.dumps(claims(client_id="aalborg-system")).encode()), signature])


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_tokens_answer_401_invalid_token_and_log_only_a_reason(api, case, caplog):
    tok = REFUSED[case]()
    assert looks_like_jwt(tok)
    caplog.set_level(logging.INFO, logger="ggop.api.oauth")
    for path in ("/fhir/Task", "/fhir/Patient"):
        r = api.get(path, headers=bearer(tok))
        assert r.status_code == 401, (case, r.json)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="ggop-adapter", error="invalid_token"'
        assert r.json["resourceType"] == "OperationOutcome"
        assert r.json["issue"][0]["code"] == "login"
        assert r.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E901"
        assert tok not in r.get_data(as_text=True)
    reason = REASONS.get(case, case)
    refusals = [rec.getMessage() for rec in caplog.records if rec.name == "ggop.api.oauth"]
    assert refusals and all(m == f"oauth: bearer token refused ({reason})" for m in refusals), refusals
    logged = caplog.text
    for part in tok.split("."):
        assert not part or part not in logged
    assert "someone-else" not in logged and "evil.test" not in logged


def test_a_valid_token_is_a_valid_token(api):
    """The refusals above differ from this accepted token in one thing each."""
    assert api.get("/fhir/Task", headers=bearer(token())).status_code == 200


# --------------------------------------------------------------------------------------------
# The JWKS: cache, rotation, bounded refresh, unavailable
# --------------------------------------------------------------------------------------------


def _validator(jwks: JwksServer, **bounds) -> OAuthValidator:
    clients = load_oauth_clients(_oauth_clients_file())
    return OAuthValidator(ISSUER, AUDIENCE, clients, BoundedJwksClient(jwks.url, **bounds))


def _oauth_clients_file() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "oauth-clients.yaml"
    path.write_text(OAUTH_CLIENTS, "utf-8")
    return path


def test_the_jwks_is_cached(jwks):
    v = _validator(jwks)
    for _ in range(5):
        assert v.validate(token()).municipality == "0461"
        assert v.validate(token(EC_KEY, "ec", "ES256", client_id="aalborg-system")).municipality == "0851"
    assert jwks.requests == 1


def test_a_rotated_key_is_accepted_after_a_refresh(jwks):
    v = _validator(jwks, refresh=0.5)
    assert v.validate(token()).name == "odense-system"
    assert jwks.requests == 1
    jwks.keys = [jwk(KEY_B, "b")]  # the issuer rotates: b replaces a
    assert v.validate(token(KEY_B, "b")).name == "odense-system"  # unknown kid: one refresh
    assert jwks.requests == 2
    with pytest.raises(TokenRefused, match="key"):
        v.validate(token())  # a is gone from the refreshed set
    jwks.keys = [jwk(KEY_B, "b"), jwk(KEY_A, "c")]
    with pytest.raises(TokenRefused, match="key"):
        v.validate(token(kid="c"))  # within the cool-down: no refresh yet
    assert jwks.requests == 2
    time.sleep(0.6)
    assert v.validate(token(kid="c")).name == "odense-system"
    assert jwks.requests == 3


def test_unknown_kids_refresh_the_jwks_at_a_bounded_rate(jwks):
    v = _validator(jwks)  # the default cool-down (30 s)
    assert v.validate(token()).name == "odense-system"
    for i in range(25):
        assert v.authenticate(token(STRANGER, kid=f"unknown-{i}")) is None
    assert jwks.requests == 2  # the first unknown kid refreshed once; the others waited


def _unavailable(jwks: JwksServer, how: str) -> None:
    if how == "http-500":
        jwks.status = 500
    elif how == "too-large":
        jwks.body = json.dumps({"keys": [jwk(KEY_A, "a")], "padding": "x" * 70_000}).encode()
    elif how == "not-json":
        jwks.body = b"<html>login</html>"
    elif how == "no-signing-key":
        jwks.keys = [jwk(KEY_A, "a", use="enc")]
    elif how == "refused":
        jwks.close()


@pytest.mark.parametrize("how", ["http-500", "too-large", "not-json", "no-signing-key", "refused"])
def test_an_unavailable_jwks_answers_503_with_retry_after(tmp_path, jwks, how):
    app, engine = make_app(tmp_path, jwks.url, plans=False)
    http = app.test_client()
    _unavailable(jwks, how)
    r = http.get("/fhir/Task", headers=bearer(token()))
    assert r.status_code == 503
    assert r.headers["Retry-After"].isdigit()
    assert r.json["resourceType"] == "OperationOutcome" and r.json["issue"][0]["code"] == "transient"
    r = http.post("/medcom", data=b"<x/>", headers={**bearer(token(client_id="sygehus-system")),
                                                     "Content-Type": "application/xml"})
    assert r.status_code == 503
    # what needs no token answers, and the static tokens work
    assert http.get("/fhir/metadata", headers=bearer(token())).status_code == 200
    assert http.get("/healthz", headers=bearer(token())).status_code == 200
    assert http.get("/fhir/Task", headers=ODENSE).status_code == 200
    engine.dispose()


def test_after_a_failed_fetch_the_jwks_is_not_fetched_again_at_once(jwks):
    from adapter.api.oauth import IssuerUnavailable

    jwks.status = 503
    v = _validator(jwks, failure_hold=0.5)
    for _ in range(10):
        with pytest.raises(IssuerUnavailable):
            v.validate(token())
    assert jwks.requests == 1
    jwks.status = 200
    time.sleep(0.6)
    assert v.validate(token()).name == "odense-system"
    assert jwks.requests == 2


def test_a_slow_jwks_is_given_up(jwks):
    from adapter.api.oauth import IssuerUnavailable

    hold = threading.Event()
    original = jwks.httpd.RequestHandlerClass.do_GET

    def slow(handler):
        hold.wait(5)
        original(handler)

    jwks.httpd.RequestHandlerClass.do_GET = slow
    v = _validator(jwks, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailable):
        v.validate(token())
    assert time.monotonic() - started < 3
    hold.set()


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _settings(tmp_path: Path, **values) -> Settings:
    path = tmp_path / "oauth-clients.yaml"
    if not path.exists():
        path.write_text(OAUTH_CLIENTS, "utf-8")
    full = {"oauth_issuer": ISSUER, "oauth_jwks_url": "https://login.region.test/certs", "oauth_audience": AUDIENCE,
            "oauth_clients_file": str(path), **values}
    return Settings(**{k: v for k, v in full.items() if v is not None})


def test_oauth_is_off_without_settings_and_read_from_the_environment(tmp_path):
    assert load_oauth(Settings()) is None
    path = tmp_path / "oauth-clients.yaml"
    path.write_text(OAUTH_CLIENTS, "utf-8")
    settings = Settings.load({"ADAPTER_OAUTH_ISSUER": ISSUER, "ADAPTER_OAUTH_JWKS_URL": "https://idp.test/certs",
                              "ADAPTER_OAUTH_AUDIENCE": AUDIENCE, "ADAPTER_OAUTH_CLIENTS_FILE": str(path)})
    v = load_oauth(settings)
    assert v is not None and v.issuer == ISSUER and v.audience == AUDIENCE
    assert v.clients["odense-system"].municipality == "0461"  # "461" read as "0461"
    assert v.clients["drift-system"].municipality is None


@pytest.mark.parametrize("missing", ["oauth_issuer", "oauth_jwks_url", "oauth_audience", "oauth_clients_file"])
def test_a_partial_configuration_is_a_located_error(tmp_path, missing):
    with pytest.raises(ConfigError) as exc:
        load_oauth(_settings(tmp_path, **{missing: None}))
    found = exc.value.issues[0]
    assert found.code == "GGOP-E501" and missing in found.render_line("-")
    assert "ADAPTER_" + missing.upper() in found.render_line("-")


def test_a_partial_configuration_stops_the_app(tmp_path):
    from adapter.api.app import create_app
    from conftest import runtime_for

    engine = open_store(f"sqlite:///{tmp_path}/adapter.db")
    with pytest.raises(ConfigError):
        create_app(runtime_for(engine, oauth_issuer=ISSUER, open_medcom=True))
    engine.dispose()


@pytest.mark.parametrize("url", ["http://idp.example.test/certs", "ftp://127.0.0.1/certs", "file:///etc/certs",
                                 "https:///certs"])
def test_the_jwks_url_is_https_or_loopback(tmp_path, url):
    with pytest.raises(ConfigError) as exc:
        load_oauth(_settings(tmp_path, oauth_jwks_url=url))
    assert "oauth_jwks_url" in exc.value.issues[0].render_line("-")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/certs", "http://localhost/certs", "http://[::1]:9/certs"])
def test_plain_http_is_allowed_on_loopback(tmp_path, url):
    assert load_oauth(_settings(tmp_path, oauth_jwks_url=url)) is not None


@pytest.mark.parametrize("text, where", [
    ("- client_id: a\n  role: municipality\n", "#[0].municipality"),
    ("- client_id: a\n  role: municipality\n  municipality: abc\n", "#[0].municipality"),
    ("- role: operator\n", "#[0].client_id"),
    ("- client_id: a\n", "#[0].role"),
    ("- client_id: a\n  role: admin\n", "#[0].role"),
    ("- client_id: a\n  role: operator\n- client_id: a\n  role: operator\n", "#[1].client_id"),
    ("- client_id: a\n  role: hospital\n  sender_eans: 5790000000000\n", "#[0].sender_eans"),
    ("- just a string\n", "#[0]"),
    ("client_id: a\n", ""),
    ("[]\n", ""),
    ("- client_id: [unclosed\n", ""),
])
def test_the_oauth_clients_file_is_validated(tmp_path, text, where):
    path = tmp_path / "oauth-clients.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as exc:
        load_oauth_clients(path)
    line = exc.value.issues[0].render_line("-")
    assert exc.value.issues[0].code == "GGOP-E501" and f"{path}{where}" in line
    assert "Traceback" not in line


def test_a_missing_oauth_clients_file_is_a_located_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_oauth(_settings(tmp_path, oauth_clients_file=str(tmp_path / "nope.yaml")))
    assert str(tmp_path / "nope.yaml") in exc.value.issues[0].render_line("-")


@pytest.mark.parametrize("tok, shaped", [
    ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", True),
    ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", True),
    ("demo-odense", False),
    ("a.b", False),
    ("a.b.c.d", False),
    ("a+b.c.d", False),
    ("a.b.c=", False),
])
def test_what_looks_like_a_jwt(tok, shaped):
    assert looks_like_jwt(tok) is shaped
