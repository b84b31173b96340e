"""Mapping templates in a running gateway: described payloads are stored; a new template works without a restart."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from edge_config import DatabaseSettings, GatewaySettings, MqttSettings
from edge_config.settings import DEFAULT_CONFIG_PATH
from fhir_mapper.validation import validate_resource
from gateway.storage import open_store
from tests.conftest import truncate
from tests.gateway_support import running_gateway
from tests.services import cli

EXAMPLE = DEFAULT_CONFIG_PATH.parent / "templates.example.yaml"
NEW_TEMPLATE = """
  - name: zenscale
    topic: "zen/+/weight"
    device_from_topic: 1
    readings:
      - type: body_weight
        value: grams
        scale: 0.001
        unit: {literal: "kg"}
        time: at
"""


async def _observations(http: httpx.AsyncClient, patient: str, want: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(20):
        while len(entries := (await http.get("/fhir/Observation", params={"patient": patient})).json().get("entry", [])) < want:
            await asyncio.sleep(0.1)
    return [entry["resource"] for entry in entries]


async def test_templates_map_payloads_and_reload_without_a_restart(timescale_url: str, broker_port: int, tmp_path: Path) -> None:
    await truncate(timescale_url)
    store = await open_store(DatabaseSettings(url=timescale_url))
    await store.add_patient("tpl-patient", None, None)
    for device in ("watch-77", "scale-5"):
        await store.add_device(device, None, None)
        await store.assign_device(device, "tpl-patient", None)
    await store.close()
    templates = tmp_path / "templates.yaml"
    shutil.copy(EXAMPLE, templates)
    settings = GatewaySettings(
        database=DatabaseSettings(url=timescale_url),
        mqtt=MqttSettings(port=broker_port, client_id="tpl-test", templates_file=templates),
    )
    async with running_gateway(settings) as http:
        async with aiomqtt.Client("127.0.0.1", broker_port) as watch:
            await watch.publish(
                "acme/watch-77/telemetry",
                b'{"deviceId": "watch-77", "samples": [{"ts": 1795338000000, "hr": 64, "spo2": 0.97}, {"ts": 1795338060000, "hr": 66}]}',
                qos=1,
            )
        resources = await _observations(http, "tpl-patient", 3)
        templates.write_text(templates.read_text() + NEW_TEMPLATE)
        async with aiomqtt.Client("127.0.0.1", broker_port) as scale:
            async with asyncio.timeout(20):
                while len(resources) < 4:
                    await scale.publish("zen/scale-5/weight", b'{"grams": 72350, "at": "2026-11-22T07:00:00Z"}', qos=1)
                    await asyncio.sleep(0.5)
                    resources = [
                        e["resource"]
                        for e in (await http.get("/fhir/Observation", params={"patient": "tpl-patient"})).json().get("entry", [])
                    ]
    values = sorted((r["code"]["coding"][0]["code"], r["valueQuantity"]["value"]) for r in resources)
    assert values == [("2708-6", 97), ("29463-7", 72.35), ("8867-4", 64), ("8867-4", 66)]
    for resource in resources:
        validate_resource(resource)


def test_check_config_names_the_line_of_a_template_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "templates.yaml"
    broken.write_text(
        "templates:\n  - name: bad\n    topic: 'x/+/y'\n    device_from_topic: 1\n    readings:\n      - type: heart_rate\n        value: 'hr['\n        unit: {literal: '/min'}\n        time: ts\n"
    )
    result = cli({"PULSEBRIDGE_MQTT__TEMPLATES_FILE": str(broken)}, "check-config")
    assert result.returncode == 2
    assert f"{broken}:7:" in result.stderr
