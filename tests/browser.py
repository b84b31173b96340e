"""Debian's Chromium driven by Playwright, for the dashboard's browser tests and screenshots.

``playwright install`` cannot download browsers here: the set-up (scripts/setup-browser.sh)
installs Debian's ``chromium`` and Playwright launches that binary. A missing one fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> str:
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make test` (scripts/setup-browser.sh installs Debian's chromium)")
    return CHROMIUM


def sign_in(page: Page, base_url: str, account: str, password: str) -> None:
    require_chromium()
    page.goto(f"{base_url}/dashboard/")
    page.fill("#account", account)
    page.fill("#password", password)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#sign-out:not([hidden])")
