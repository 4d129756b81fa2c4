"""OAuth against a real OpenID provider: Keycloak (tests/support/keycloak.py) issues tokens with
the client-credentials grant, and the adapter validates them against Keycloak's JWKS.

Slow: the first run fetches and unpacks Keycloak into build/keycloak and starts it (about a
minute); later runs reuse the distribution (about 20 s). Skipped when Java 17+ or the
distribution cannot be had."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from tests.support import TEST_ID_KEY
from tests.support.fhir_world import ODENSE, UTC, Clock, load_store, search_all, write_clients
from tests.support.keycloak import Keycloak, KeycloakUnavailable

from adapter.config import Settings
from adapter.store.engine import open_store

pytestmark = pytest.mark.slow

REALM = "ggop"
AUDIENCE = "https://ggop-adapter.test/fhir"


@pytest.fixture(scope="module")
def keycloak(tmp_path_factory):
    kc = Keycloak(tmp_path_factory.mktemp("keycloak"))
    try:
        kc.start()
    except KeycloakUnavailable as exc:
        pytest.skip(f"Keycloak unavailable: {exc}")
    try:
        kc.create_realm(REALM)
        yield kc
    finally:
        kc.stop()


def _task_ids(http, headers: dict) -> set[str]:
    _, matches = search_all(http, "/fhir/Task?_count=50", headers)
    return {t["id"] for t in matches}


def test_keycloak_client_credentials_tokens(keycloak, tmp_path):
    from adapter.api.app import create_app
    from adapter.runtime import load_runtime

    odense_secret = keycloak.create_client(REALM, "odense-system", audience=AUDIENCE)
    stranger_secret = keycloak.create_client(REALM, "stranger-system", audience=AUDIENCE)
    deaf_secret = keycloak.create_client(REALM, "deaf-system")  # listed, but no audience mapper

    odense = keycloak.client_credentials_token(REALM, "odense-system", odense_secret)
    header, claims = jwt.get_unverified_header(odense), jwt.decode(odense, options={"verify_signature": False})
    assert header["alg"] == "RS256" and header.get("kid")
    assert claims["iss"] == keycloak.issuer(REALM)
    assert AUDIENCE in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert claims["azp"] == "odense-system"

    url = f"sqlite:///{tmp_path}/adapter.db"
    engine = open_store(url)
    load_store(engine)
    oauth_clients = tmp_path / "oauth-clients.yaml"
    oauth_clients.write_text('- client_id: odense-system\n  role: municipality\n  municipality: "0461"\n'
                             '- client_id: deaf-system\n  role: operator\n', "utf-8")
    settings = Settings(id_key=TEST_ID_KEY, database_url=url, clients_file=str(write_clients(tmp_path / "clients.yaml")),
                        oauth_issuer=keycloak.issuer(REALM), oauth_jwks_url=keycloak.jwks_url(REALM),
                        oauth_audience=AUDIENCE, oauth_clients_file=str(oauth_clients))
    http = create_app(load_runtime(settings, engine=engine), Clock(dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC))).test_client()

    # the Keycloak client maps to Odense: it sees exactly what Odense's static token sees
    seen = _task_ids(http, {"Authorization": f"Bearer {odense}"})
    assert seen and seen == _task_ids(http, ODENSE)
    assert seen.isdisjoint(_task_ids(http, {"Authorization": "Bearer tok-aalborg"}))

    # a valid Keycloak token of a client not in the OAuth clients file is refused
    stranger = keycloak.client_credentials_token(REALM, "stranger-system", stranger_secret)
    r = http.get("/fhir/Task", headers={"Authorization": f"Bearer {stranger}"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="ggop-adapter", error="invalid_token"'
    assert r.json["issue"][0]["details"]["coding"][0]["code"] == "GGOP-E901"

    # a listed client whose token is not meant for the adapter (no audience mapper) is refused
    deaf = keycloak.client_credentials_token(REALM, "deaf-system", deaf_secret)
    assert http.get("/fhir/Task", headers={"Authorization": f"Bearer {deaf}"}).status_code == 401

    # the static tokens work beside the OAuth ones
    assert http.get("/fhir/Task", headers=ODENSE).status_code == 200
    engine.dispose()
