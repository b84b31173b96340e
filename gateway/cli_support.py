"""What every ``pulsebridge`` command module shares: the usage error, ``--config`` and a store for one command."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from device_adapters.errors import PulseBridgeError
from edge_config import GatewaySettings
from gateway.storage import ObservationStore, open_store

T = TypeVar("T")


class UsageError(PulseBridgeError):
    """A command-line argument is wrong."""


def config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (default: the bundled edge_config/defaults/gateway.yaml)")


def with_store(settings: GatewaySettings, work: Callable[[ObservationStore], Awaitable[T]]) -> T:
    """Open the configured store, migrate it, run ``work`` and close it."""

    async def run() -> T:
        store = await open_store(settings.database)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())
