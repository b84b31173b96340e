"""`pulsebridge demo`: embedded broker + SQLite + simulator, answering FHIR within a minute."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fhir_mapper.validation import validate_resource
from tests.services import free_port


def test_demo_serves_simulated_observations(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("w+b")
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--interval", "0.5", "--data-dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        started = time.monotonic()
        url = token = patient_token = practitioner_token = None
        while (url is None or patient_token is None) and time.monotonic() - started < 60:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            printed = (tmp_path / "demo.log").read_text()
            match = re.search(r"Observations:\s+(\S+)", printed)
            url = match.group(1) if match else None
            admin, patient = re.search(r"Admin token:\s+(\S+)", printed), re.search(r"Patient token:\s+(\S+)", printed)
            token, patient_token = (admin.group(1) if admin else None), (patient.group(1) if patient else None)
            doctor = re.search(r"Practitioner token:\s+(\S+)", printed)
            practitioner_token = doctor.group(1) if doctor else None
            time.sleep(0.1)
        assert url is not None, "the demo never printed its URL"
        assert token is not None
        assert patient_token is not None, "the demo never printed its tokens"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, timeout=5).status_code == 401  # the API needs a token, even in the demo
        assert url.startswith(f"http://127.0.0.1:{port}/fhir/Observation?patient=")
        kinds: set[str] = set()
        while time.monotonic() - started < 60 and len(kinds) < 7:
            bundle = httpx.get(f"{url}&_count=200", headers=headers, timeout=5).json()
            entries = [entry["resource"] for entry in bundle.get("entry", [])]
            kinds = {resource["code"]["coding"][-1]["display"] for resource in entries}
            time.sleep(0.2)
        assert len(kinds) >= 7, kinds  # watch (3), cuff (2), thermometer, scale
        for resource in entries:
            validate_resource(resource)
            assert resource["subject"]["reference"] == "Patient/demo-ada"
        validate_resource(bundle)
        # The patient's own token reads their record, and finds nothing in another patient's.
        own = httpx.get(url, headers={"Authorization": f"Bearer {patient_token}"}, timeout=5).json()
        assert own["entry"]
        other = url.replace("demo-ada", "demo-grace")
        assert "entry" not in httpx.get(other, headers={"Authorization": f"Bearer {patient_token}"}, timeout=5).json()
        # The practitioner's care team holds every demo patient.
        assert httpx.get(other, headers={"Authorization": f"Bearer {practitioner_token}"}, timeout=5).json()["entry"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "pass"
    finally:
        demo.terminate()
        demo.wait(timeout=20)
        log.close()
