"""``pulsebridge demo``: the whole gateway in one process on a laptop with only Python.

An in-process MQTT broker (amqtt), the embedded SQLite store, a few simulated patients with a
watch, a blood pressure cuff, a thermometer and a scale each, and the FHIR API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import uvicorn
from amqtt.broker import Broker

from device_adapters.errors import RegistryError
from device_adapters.mqtt.publisher import ReadingPublisher
from device_adapters.simulator.vitals import PROFILES, DeviceProfile, SimulatedDevice, Vital, VitalsSimulator
from edge_config import AuthSettings, DatabaseSettings, GatewaySettings, HttpSettings, IngestSettings, MqttSettings
from edge_config.alert_settings import AlertRuleSet, ThresholdSettings
from gateway.app import create_app
from gateway.auth.passwords import hash_password
from gateway.auth.tokens import Role
from gateway.runtime import Runtime

logger = logging.getLogger(__name__)

DEMO_PATIENTS = (("demo-ada", "Ada Lovelace"), ("demo-alan", "Alan Turing"), ("demo-grace", "Grace Hopper"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


DEMO_ADMIN_SCOPE = "user/*.cruds"
DEMO_PATIENT_SCOPE = "patient/Observation.rs patient/Patient.rs patient/Device.cruds patient/Flag.rs patient/Consent.rus"
DEMO_PRACTITIONER_SCOPE = "user/Observation.rus user/Patient.rs user/Device.cruds user/Flag.rus"
DEMO_PRACTITIONER = "demo-dr"
DEMO_TEAM = "demo-team"
DEMO_ADMIN = "demo-admin"


def demo_settings(http_port: int, mqtt_port: int, data_dir: Path) -> GatewaySettings:
    return GatewaySettings(
        database=DatabaseSettings(url=f"sqlite:///{data_dir / 'pulsebridge-demo.db'}"),
        # amqtt speaks MQTT 3.1.1; the persistent session uses clean_session=False there.
        mqtt=MqttSettings(port=mqtt_port, protocol="3.1.1", client_id="pulsebridge-demo-gateway"),
        http=HttpSettings(port=http_port),
        ingest=IngestSettings(batch_wait_ms=20),
        auth=AuthSettings(signing_key_file=data_dir / "signing-key.pem"),
    )


def _raised_blood_pressure(profile: DeviceProfile) -> DeviceProfile:
    """Alan's cuff reads hypertensive, so the dashboard has something to highlight."""
    if profile.name != "cuff":
        return profile
    pressure = profile.vitals[0]
    raised = (replace(pressure.components[0], baseline=152), replace(pressure.components[1], baseline=96))
    return replace(profile, vitals=(replace(pressure, components=raised), *profile.vitals[1:]))


def _with_battery(profile: DeviceProfile) -> DeviceProfile:
    """Watches report their battery too (the dashboard shows it)."""
    if profile.name != "watch":
        return profile
    return replace(profile, vitals=(*profile.vitals, Vital("battery_level", "%", 55, 25, 0)))


def _devices_of(patient_id: str) -> tuple[SimulatedDevice, ...]:
    profiles = tuple(_with_battery(p) for p in PROFILES)
    if patient_id == "demo-alan":
        profiles = tuple(_raised_blood_pressure(p) for p in profiles)
    return tuple(SimulatedDevice(f"{patient_id}-{profile.name}", profile) for profile in profiles)


async def _seed(runtime: Runtime, patients: tuple[tuple[str, str], ...], password: str) -> None:
    store = runtime.store
    with contextlib.suppress(RegistryError):  # a reused --data-dir already has the team
        await store.add_account(DEMO_PRACTITIONER, "practitioner", "Dr. Demo", None)
        await store.add_care_team(DEMO_TEAM, "Demo care team")
        await store.add_care_team_member(DEMO_TEAM, DEMO_PRACTITIONER)
    for patient_id, name in patients:
        with contextlib.suppress(RegistryError):  # a reused --data-dir already has them
            await runtime.store.add_patient(patient_id, name, None)
        for device in _devices_of(patient_id):
            with contextlib.suppress(RegistryError):
                await runtime.store.add_device(device.device_id, device.profile.name, device.profile.display)
            await runtime.store.assign_device(device.device_id, patient_id, None)
        await store.add_care_team_patient(DEMO_TEAM, patient_id)
        with contextlib.suppress(RegistryError):
            await store.add_account(patient_id, "patient", name, patient_id)
    with contextlib.suppress(RegistryError):
        await store.add_account(DEMO_ADMIN, "admin", "Demo administrator", None)
    # Alan's care team watches his blood pressure more closely than the defaults do.
    watched = {"high": Decimal(140), "critical_high": Decimal(180)}
    hypertension = AlertRuleSet(
        thresholds={**runtime.settings.alerts.defaults.thresholds, "blood_pressure.systolic": ThresholdSettings(**watched),
                    "blood_pressure.diastolic": ThresholdSettings(high=Decimal(90), critical_high=Decimal(120))},
    )  # fmt: skip
    if any(patient_id == "demo-alan" for patient_id, _ in patients):
        await store.alerts.set_alert_rules("demo-alan", hypertension.model_dump_json(), DEMO_PRACTITIONER, datetime.now(UTC))
    password_hash = await asyncio.to_thread(hash_password, password)
    for account in (DEMO_PRACTITIONER, DEMO_ADMIN, *(patient_id for patient_id, _ in patients)):
        await store.set_account_password(account, password_hash)


async def _backfill(mqtt_port: int, patients: tuple[tuple[str, str], ...], days: int) -> None:
    """Hourly readings for the last ``days`` days, with a few whole days skipped (adherence is then not perfect)."""
    if days <= 0:
        return
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    async with ReadingPublisher("127.0.0.1", mqtt_port, client_id="pulsebridge-demo-backfill") as publisher:
        for seed, (patient_id, _) in enumerate(patients):
            simulator = VitalsSimulator(1000 + seed, _devices_of(patient_id))
            hour = start
            while hour < now - timedelta(minutes=5):
                if (hour.toordinal() * 7 + seed * 3) % (5 + seed) != 0:  # some whole UTC days without readings
                    for device_id, readings in simulator.tick(hour.astimezone()):
                        await publisher.publish(device_id, readings)
                hour += timedelta(hours=1)


async def _simulate(mqtt_port: int, patients: tuple[tuple[str, str], ...], interval: float) -> None:
    simulators = [VitalsSimulator(seed, _devices_of(patient_id)) for seed, (patient_id, _) in enumerate(patients)]
    async with ReadingPublisher("127.0.0.1", mqtt_port, client_id="pulsebridge-demo-simulator") as publisher:
        while True:
            now = datetime.now(UTC).astimezone()
            for simulator in simulators:
                for device_id, readings in simulator.tick(now):
                    await publisher.publish(device_id, readings)
            await asyncio.sleep(interval)


def _demo_extension(mqtt_port: int, patients: tuple[tuple[str, str], ...], interval: float, options: DemoOptions):  # type: ignore[no-untyped-def] # noqa: ANN202 - returns the Extension callable
    @asynccontextmanager
    async def extension(runtime: Runtime) -> AsyncIterator[None]:
        await _seed(runtime, patients, options.password)
        await _backfill(mqtt_port, patients, options.history_days)
        task = asyncio.create_task(_simulate(mqtt_port, patients, interval), name="demo-simulator")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return extension


@dataclass(frozen=True, slots=True)
class DemoOptions:
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    """The dashboard password of every demo account (printed at start)."""
    history_days: int = 0
    """Days of hourly readings published before the live simulation starts."""


async def run_demo(
    http_port: int, data_dir: Path | None, patient_count: int, interval: float, options: DemoOptions | None = None
) -> None:
    options = options or DemoOptions()
    mqtt_port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{mqtt_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        },
    )
    await broker.start()
    patients = DEMO_PATIENTS[: max(1, min(patient_count, len(DEMO_PATIENTS)))]
    with contextlib.ExitStack() as cleanup:
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pulsebridge-demo-")))
        settings = demo_settings(http_port, mqtt_port, data_dir)
        app = create_app(settings, extensions=[_demo_extension(mqtt_port, patients, interval, options)])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no "started" event
            await asyncio.sleep(0.05)
        if server.started:
            _announce(http_port, patients, data_dir, app.state.runtime, options.password)
        try:
            await serving
        finally:
            await broker.shutdown()


def _announce(http_port: int, patients: tuple[tuple[str, str], ...], data_dir: Path, runtime: Runtime, password: str) -> None:
    base = f"http://127.0.0.1:{http_port}"
    local = runtime.auth.local
    first = patients[0][0]
    admin = local.issue(DEMO_ADMIN, Role.ADMIN, DEMO_ADMIN_SCOPE)
    patient = local.issue(first, Role.PATIENT, DEMO_PATIENT_SCOPE, patient_id=first)
    practitioner = local.issue(DEMO_PRACTITIONER, Role.PRACTITIONER, DEMO_PRACTITIONER_SCOPE)
    lines = [
        "PulseBridge demo is running (Ctrl-C stops it).",
        f"  Dashboard:     {base}/dashboard/  (accounts {DEMO_PRACTITIONER}, {DEMO_ADMIN}, {first}; password {password})",
        f"  FHIR API:      {base}/fhir/metadata",
        f"  Observations:  {base}/fhir/Observation?patient={patients[0][0]}",
        *(f"                 {base}/fhir/Observation?patient={patient_id}  ({name})" for patient_id, name in patients[1:]),
        f"  Health:        {base}/healthz",
        f"  Store:         {data_dir / 'pulsebridge-demo.db'}",
        "Bearer tokens (one hour; `pulsebridge token issue` with",
        f"PULSEBRIDGE_AUTH__SIGNING_KEY_FILE={data_dir / 'signing-key.pem'} makes more):",
        f"  Admin token:   {admin}",
        f"  Practitioner token: {practitioner}  ({DEMO_PRACTITIONER}, the demo care team's patients)",
        f"  Patient token: {patient}  ({first}, own readings only)",
        f'  Try:           curl -H "Authorization: Bearer $TOKEN" "{base}/fhir/Observation?patient={first}"',
    ]
    print("\n".join(lines), flush=True)  # noqa: T201 - the demo's output is for the person running it
