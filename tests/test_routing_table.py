"""The routing table: loading, located errors, lookups, and `ggop-adapter routes check`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tests.support.fhir_endpoints import StubEndpoint

from adapter.cli import main
from adapter.errors import ConfigError
from adapter.routing.routes import PULL, PUSH, load_routing

GOOD = """\
defaults:
  municipalities: pull
  max_age_hours: 48
routes:
  "municipality:0851":
    mode: push
    base_url: https://fhir.example.invalid/r4/
    auth: {bearer_token_env: AALBORG_TOKEN}
  "gln:5790001234560":
    mode: push
    base_url: https://gp.example.invalid/fhir
    payload: message
    timeout_seconds: 5
    auth:
      client_cert: /etc/x.crt
      client_key: /etc/x.key
  "ydernummer:054321":
    mode: pull
"""


def write(tmp_path, text: str):
    p = tmp_path / "routing.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_shipped_table_loads_and_pulls_for_every_municipality():
    table = load_routing()
    assert table.municipality_default is not None and table.municipality_default.mode == PULL
    assert table.lookup(["municipality:0101"]).mode == PULL
    assert table.lookup(["gln:5790001234560"]) is None  # a GP copy waits for a route


def test_lookups_use_the_first_key_with_an_entry(tmp_path):
    table = load_routing(write(tmp_path, GOOD))
    r = table.lookup(["municipality:0851", "gln:5790007654324"])
    assert r.mode == PUSH and r.base_url == "https://fhir.example.invalid/r4" and r.auth.kind == "bearer"
    assert r.retry.max_age.total_seconds() == 48 * 3600
    gp = table.lookup(["gln:5790001234560", "ydernummer:012345"])
    assert gp.payload == "message" and gp.timeout == 5 and gp.auth.kind == "mtls"
    assert table.lookup(["gln:5790001234577", "ydernummer:054321"]).mode == PULL  # by its other key
    assert table.lookup(["municipality:0461"]).mode == PULL  # the default
    assert table.lookup(["region:1081"]) is None


def test_municipalities_none_makes_unlisted_municipalities_unroutable(tmp_path):
    table = load_routing(write(tmp_path, "defaults: {municipalities: none}\nroutes: {}\n"))
    assert table.lookup(["municipality:0461"]) is None


@pytest.mark.parametrize("text,line,key,words", [
    ('routes:\n  "municipality:9999": {mode: pull}\n', 2, "routes.municipality:9999", "municipalities.csv"),
    ('routes:\n  "gln:5790001234561": {mode: pull}\n', 2, "routes.gln:5790001234561", "check digit"),
    ('routes:\n  "kommune:0851": {mode: pull}\n', 2, "routes.kommune:0851", "route key"),
    ('routes:\n  "municipality:0851":\n    mode: push\n', 3, "routes.municipality:0851.base_url", "needs base_url"),
    ('routes:\n  "municipality:0851":\n    mode: push\n    base_url: ftp://x\n', 4,
     "routes.municipality:0851.base_url", "http"),
    ('routes:\n  "municipality:0851":\n    mode: push\n    base_url: https://u:p@x.dk/fhir\n', 4,
     "routes.municipality:0851.base_url", "credentials"),
    ('routes:\n  "municipality:0851":\n    mode: sometimes\n', 3, "routes.municipality:0851.mode", "push, pull"),
    ('routes:\n  "municipality:0851":\n    mode: push\n    base_url: https://x.dk\n    auth: {bearer_token_env: "abc def"}\n',
     5, "routes.municipality:0851.auth.bearer_token_env", "environment variable"),
    ('routes:\n  "municipality:0851":\n    mode: push\n    base_url: https://x.dk\n    auth: {client_cert: a.pem}\n',
     5, "routes.municipality:0851.auth", "client_key"),
    ('routes:\n  "municipality:0851":\n    mode: push\n    base_url: https://x.dk\n    timeout_seconds: 0\n',
     5, "routes.municipality:0851.timeout_seconds", "between"),
    ('routes:\n  "municipality:0851":\n    mode: pull\n    base_url: https://x.dk\n', 4,
     "routes.municipality:0851.base_url", "only applies to mode push"),
    ('defaults:\n  max_age_hours: 0.5\nroutes: {}\n', 2, "defaults.max_age_hours", "between"),
    ('defaults:\n  colour: blue\nroutes: {}\n', 2, "defaults.colour", "unknown key"),
    ('routes:\n  "municipality:0851": {mode: pull}\n  "municipality:0851": {mode: pull}\n', 3, "", "duplicate key"),
    ('routes: [\n', 2, "", "YAML"),
    ('defaults: {}\n', 1, "routes", "missing key"),
])
def test_a_broken_table_is_one_located_error(tmp_path, text, line, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_routing(path)
    (i,) = err.value.issues
    assert i.code == "GGOP-E501" and i.location.line == line, i.render_line()
    assert i.location.xpath == f"{path}#{key or '/'}", i.location.xpath
    assert words in i.message, i.message


def test_routes_check_reports_a_broken_file_with_exit_3(tmp_path):
    path = write(tmp_path, 'routes:\n  "municipality:0851":\n    mode: push\n')
    result = CliRunner().invoke(main, ["routes", "check", "--routes", str(path)])
    assert result.exit_code == 3
    assert f"{path}:3 {path}#routes.municipality:0851.base_url GGOP-E501" in result.output


def test_routes_check_lists_routes_and_warns_of_what_is_missing_here(tmp_path, monkeypatch):
    monkeypatch.delenv("AALBORG_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["routes", "check", "--routes", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "3 routes (2 push, 1 pull); municipalities without an entry: pull" in result.output
    assert "municipality:0851: push transaction to https://fhir.example.invalid/r4 (auth bearer" in result.output
    assert "AALBORG_TOKEN is not set here" in result.output
    assert "client_cert file /etc/x.crt does not exist" in result.output


def test_routes_check_probe_calls_metadata_of_every_push_route(tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_TOKEN", "t0ken")
    with StubEndpoint() as stub:
        ok = write(tmp_path, f'routes:\n  "municipality:0851": {{mode: push, base_url: "{stub.base_url}", '
                             f'auth: {{bearer_token_env: STUB_TOKEN}}}}\n')
        result = CliRunner().invoke(main, ["routes", "check", "--routes", str(ok), "--probe"])
        assert result.exit_code == 0, result.output
        assert "probe municipality:0851" in result.output and "ok (HTTP 200, FHIR 4.0.1, stub)" in result.output
        assert stub.seen[-1].headers.get("Authorization") == "Bearer t0ken"
        down = write(tmp_path, f'routes:\n  "municipality:0851": {{mode: push, base_url: "{stub.base_url}"}}\n'
                               '  "municipality:0461": {mode: push, base_url: "http://127.0.0.1:9/fhir"}\n')
        result = CliRunner().invoke(main, ["routes", "check", "--routes", str(down), "--probe"])
        assert result.exit_code == 3
        assert "probe municipality:0461 http://127.0.0.1:9/fhir/metadata: FAILED (no answer" in result.output
