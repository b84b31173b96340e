"""Screenshots of the dashboard for the README, from the demo's data, in Debian's Chromium.

    .venv/bin/python scripts/screenshots.py            # writes docs/dashboard-patients.png, docs/dashboard-patient.png

Starts ``pulsebridge demo`` with 30 days of history on a free port, signs in as the demo
practitioner, and captures the patient list and Alan Turing's page (his cuff reads high).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, sign_in  # noqa: E402 - after the path is set
from tests.services import free_port  # noqa: E402 - after the path is set


def main() -> None:
    port, password = free_port(), secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="pulsebridge-shots-") as folder:
        log = Path(folder) / "demo.log"
        with log.open("wb") as output:
            demo = subprocess.Popen(
                [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--history-days", "30", "--interval", "5",
                 "--data-dir", folder, "--password-stdin"],
                stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
            assert demo.stdin is not None  # noqa: S101 - a pipe was asked for
            demo.stdin.write(f"{password}\n".encode())
            demo.stdin.close()
            try:
                deadline = time.monotonic() + 120
                while not re.search(r"Dashboard:", log.read_text()):
                    if demo.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the demo did not start:\n{log.read_text()}")
                    time.sleep(0.2)
                _capture(f"http://127.0.0.1:{port}", password)
            finally:
                demo.terminate()
                demo.wait(timeout=30)


def _capture(base: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        sign_in(page, base, "demo-dr", password)
        page.wait_for_selector("#patients tbody tr[data-patient='demo-alan']")
        page.screenshot(path=str(ROOT / "docs" / "dashboard-patients.png"), full_page=True)
        page.click("a[href='#/patient/demo-alan']")
        page.wait_for_selector(".chart[data-kind='blood_pressure'] canvas")
        page.wait_for_selector("#readings tbody tr")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / "docs" / "dashboard-patient.png"), full_page=True)
        browser.close()
    print("wrote docs/dashboard-patients.png and docs/dashboard-patient.png")


if __name__ == "__main__":
    main()
