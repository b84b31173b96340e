"""The fault suite: every test here is marked ``faults``.

``make faults`` (``PULSEBRIDGE_FAULTS=full``) runs all of them at full size; ``make test`` runs
only those also marked ``quick``, at small sizes; the rest are deselected there, not skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.support import FULL

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)
            if not FULL and item.get_closest_marker("quick") is None:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
