"""Serving the dashboard's pages and files, with headers that keep it to itself.

The content security policy allows scripts, styles and connections to this origin only (no
inline script, no third-party host), images from it and from ``data:`` (the pairing QR code),
and no framing. A missing vendored chart library is a loud 503 naming the set-up step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from edge_config import DashboardSettings
from gateway.api.errors import outcome_response
from gateway.dashboard.session import install_session
from gateway.dashboard.stream import router as stream_router
from gateway.dashboard.summary import router as summary_router

STATIC = Path(str(resources.files("gateway.dashboard") / "static"))
CHART_LIBRARY = STATIC / "vendor" / "uPlot.iife.min.js"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def install_dashboard(app: FastAPI, settings: DashboardSettings) -> None:
    if not settings.enabled:
        return
    install_session(app, settings)
    app.include_router(summary_router)
    app.include_router(stream_router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_root() -> Response:
        return RedirectResponse("/dashboard/", status_code=308)

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard_page() -> Response:
        if not CHART_LIBRARY.is_file():
            return outcome_response(503, "the dashboard's chart library is missing: run scripts/fetch-uplot.sh (make setup)")
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    @app.middleware("http")
    async def harden(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/dashboard"):
            response.headers.update(SECURITY_HEADERS)
        return response
