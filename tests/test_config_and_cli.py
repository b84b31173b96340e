"""Typed settings validated once, and the CLI's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_adapters.errors import ConfigError
from edge_config import load_settings
from tests.services import cli


def test_bundled_defaults_load() -> None:
    settings = load_settings()
    assert settings.mqtt.protocol == "5"
    assert settings.mqtt.client_id == "pulsebridge-gateway"
    assert settings.database.url.startswith("postgresql://")


def test_yaml_and_environment_merge_with_environment_winning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("mqtt:\n  host: broker.internal\n  port: 1884\nhttp:\n  port: 9000\n")
    monkeypatch.setenv("PULSEBRIDGE_MQTT__PORT", "8883")
    settings = load_settings(config)
    assert (settings.mqtt.host, settings.mqtt.port, settings.http.port) == ("broker.internal", 8883, 9000)
    assert settings.ingest.batch_size == 500  # untouched defaults remain


@pytest.mark.parametrize(
    ("yaml_text", "location"),
    [
        ("mqtt:\n  port: 70000\n", "mqtt.port"),
        ("mqtt:\n  qos: 3\n", "mqtt.qos"),
        ("databse:\n  url: x\n", "databse"),
        ("database:\n  url: mysql://x\n", "database"),
        ("mqtt:\n  client_id: 'has space'\n", "mqtt.client_id"),
        ("- just\n- a list\n", "top level"),
        ("mqtt: [unclosed\n", "not valid YAML"),
    ],
)
def test_mistakes_name_their_location(tmp_path: Path, yaml_text: str, location: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert location in str(caught.value)
    assert str(config) in str(caught.value)


def test_check_config_command(tmp_path: Path) -> None:
    ok = cli({}, "check-config")
    assert ok.returncode == 0
    assert "configuration OK" in ok.stdout
    bad = cli({"PULSEBRIDGE_MQTT__PORT": "not-a-port"}, "check-config")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("pulsebridge: error:")
    assert "mqtt.port" in bad.stderr
    missing = cli({}, "check-config", "--config", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2
    assert "not found" in missing.stderr


def test_registry_commands_on_the_embedded_store(tmp_path: Path) -> None:
    env = {"PULSEBRIDGE_DATABASE__URL": f"sqlite:///{tmp_path / 'registry.db'}"}
    created = cli(env, "patients", "add", "--name", "Ada")
    assert created.returncode == 0
    patient_id = created.stdout.strip()
    assert cli(env, "devices", "add", "scale-1", "--kind", "scale").returncode == 0
    assigned = cli(env, "devices", "assign", "scale-1", patient_id)
    assert assigned.returncode == 0
    assert f"Patient/{patient_id}" in assigned.stdout
    assert patient_id in cli(env, "patients", "list").stdout
    assert "scale-1" in cli(env, "devices", "list").stdout

    for args, message in (
        (("devices", "add", "scale-1"), "already exists"),
        (("devices", "add", "bad/id"), "device id"),
        (("devices", "assign", "ghost", patient_id), "no device 'ghost'"),
        (("devices", "assign", "scale-1", "nobody"), "no patient 'nobody'"),
        (("devices", "assign", "scale-1", patient_id, "--from", "2026-01-01T00:00:00"), "UTC offset"),
        (("patients", "add", "--id", "has space"), "patient id"),
    ):
        result = cli(env, *args)
        assert result.returncode == 2, args
        assert result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr


def test_serve_with_an_unreachable_database_fails_in_one_line() -> None:
    result = cli({"PULSEBRIDGE_DATABASE__URL": "postgresql://127.0.0.1:1/nowhere"}, "serve")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "database unavailable" in result.stderr


def test_plausibility_overrides_are_checked_against_the_catalogue(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("plausibility:\n  heart_rate: {low: 30, high: 220}\n  blood_glucose: {low: 20, high: 600, unit: mg/dL}\n")
    assert cli({}, "check-config", "--config", str(good)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("plausibility:\n  heart_rat: {low: 30, high: 220}\n")
    result = cli({}, "check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "plausibility.heart_rat" in result.stderr


@pytest.mark.parametrize(("yaml_text", "words"), [("mqtt:\n  qos: 0\n", "qos 0"), ("mqtt:\n  clean_start: true\n", "clean_start"),
                                                   ("mqtt:\n  client_id: null\n", "client_id")])  # fmt: skip
def test_settings_that_lose_data_are_refused_unless_intended(tmp_path: Path, yaml_text: str, words: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert words in str(caught.value)
    assert "allow_data_loss" in str(caught.value)
    config.write_text(yaml_text + "  allow_data_loss: true\n")
    assert load_settings(config).mqtt.allow_data_loss


@pytest.mark.parametrize(
    ("yaml_text", "words"),
    [
        (
            "alerts:\n  defaults:\n    thresholds:\n      hart_rate: {high: 100}\n",
            "alerts.defaults: 'hart_rate': no reading kind",
        ),
        ("alerts:\n  defaults:\n    thresholds:\n      heart_rate: {low: 100, high: 50}\n", "bounds must increase"),
        ("alerts:\n  webhooks:\n    urls: [http://127.0.0.1:9/hook]\n", "need a secret_file"),
        ("alerts:\n  webhooks:\n    urls: [http://127.0.0.1:9/hook]\n    secret_file: /nonexistent/secret\n", "cannot read"),
    ],
)
def test_alert_settings_mistakes_fail_in_one_line(tmp_path: Path, yaml_text: str, words: str) -> None:
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml_text)
    result = cli({}, "check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr
