"""Settings: defaults < TOML file < ADAPTER_* environment; bad settings are located errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.config import Settings
from adapter.errors import ConfigError
from conftest import DATA


def test_defaults():
    s = Settings.load({})
    assert s.database_url == "sqlite:///var/adapter.db" and s.max_bytes == 10 * 1024 * 1024 and not s.check_models


def test_toml_then_environment(tmp_path):
    cfg = tmp_path / "adapter.toml"
    cfg.write_text('[adapter]\nmax_bytes = 2048\ncheck_models = true\ndatabase_url = "sqlite:///x.db"\n')
    s = Settings.load({"ADAPTER_CONFIG": str(cfg), "ADAPTER_MAX_BYTES": "4096"})
    assert s.max_bytes == 4096 and s.check_models is True and s.database_url == "sqlite:///x.db"


@pytest.mark.parametrize("env,where", [
    ({"ADAPTER_MAX_BYTES": "ten"}, "environment#max_bytes"),
    ({"ADAPTER_CHECK_MODELS": "maybe"}, "environment#check_models"),
])
def test_bad_values_name_the_setting(env, where):
    with pytest.raises(ConfigError) as info:
        Settings.load(env)
    assert info.value.issues[0].location.xpath == where


def test_unknown_key_in_file(tmp_path):
    cfg = tmp_path / "adapter.toml"
    cfg.write_text("[adapter]\nmax_byts = 1\n")
    with pytest.raises(ConfigError) as info:
        Settings.load({"ADAPTER_CONFIG": str(cfg)})
    assert info.value.issues[0].location.xpath.endswith("#max_byts")


def test_municipal_rule_override_changes_the_explanation(tmp_path, monkeypatch):
    """A municipality's own rule file changes the outcome without code changes."""
    override = tmp_path / "kommune.yaml"
    override.write_text("municipality: national\nstratification:\n  rules:\n    - id: STRAT-R7-CHILD\n      disabled: true\n",
                        encoding="utf-8")
    plan = str(DATA / "ggop" / "child-consent-nej.xml")
    before = CliRunner().invoke(main, ["explain", "--lang", "en", plan])
    assert "STRAT-R7-CHILD" in before.stdout
    monkeypatch.setenv("ADAPTER_RULE_OVERRIDES", str(override))
    after = CliRunner().invoke(main, ["explain", "--lang", "en", plan])
    assert after.exit_code == 0 and "STRAT-R7-CHILD" not in after.stdout


def test_broken_override_is_a_located_configuration_error(tmp_path, monkeypatch):
    override = tmp_path / "broken.yaml"
    override.write_text("municipality: national\nstratification:\n  rules:\n    - when: {plan_type_in: [almen]}\n",
                        encoding="utf-8")
    monkeypatch.setenv("ADAPTER_RULE_OVERRIDES", str(override))
    res = CliRunner().invoke(main, ["convert", str(DATA / "ggop" / "minimal-almen.xml")])
    assert res.exit_code == 3 and "GGOP-E501" in res.stderr and "broken.yaml" in res.stderr
    assert "Traceback" not in res.output
