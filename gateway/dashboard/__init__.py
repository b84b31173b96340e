"""The web dashboard: a small static front end served by the gateway, and the API it needs.

Pages live in ``static/`` (package data); the chart library is uPlot, fetched at set-up by
``scripts/fetch-uplot.sh`` into ``static/vendor/`` (pinned version, checked integrity). The
pages call the same API as any client, authenticated by the session cookie (``session``).
"""

from __future__ import annotations

from gateway.dashboard.pages import install_dashboard

__all__ = ["install_dashboard"]
