"""Plausibility ranges per kind, checked over a whole batch at once with numpy.

A value outside its kind's range (in the canonical unit) is ``implausible_value``, and so is a
blood pressure whose diastolic is not below its systolic. Ranges come from the catalogue and
can be overridden per kind (or per component) in the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

import numpy as np

from device_adapters.errors import ConfigError
from fhir_mapper.catalogue import CATALOGUE, PlausibleRange


@dataclass(frozen=True, slots=True)
class RangeOverride:
    low: Decimal
    high: Decimal
    unit: str | None = None
    """Canonical unit the bounds are in; needed only for kinds stored in several (glucose)."""


@dataclass(frozen=True, slots=True)
class CheckedValue:
    """One value to check: which reading (by position in the batch) and what it is."""

    position: int
    kind: str
    component: str | None
    unit: str
    value: Decimal


class PlausibilityPolicy:
    """The ranges in force: ``(kind, component, unit) -> (low, high)``."""

    def __init__(self, overrides: Mapping[str, RangeOverride] | None = None) -> None:
        ranges: dict[tuple[str, str | None, str], tuple[Decimal, Decimal]] = {}
        for kind in CATALOGUE.values():
            for bounds in kind.plausible:
                ranges[kind.name, None, bounds.unit] = (bounds.low, bounds.high)
            for component in kind.components:
                if component.plausible is not None:
                    ranges[kind.name, component.name, component.plausible.unit] = (
                        component.plausible.low,
                        component.plausible.high,
                    )
        for key, override in (overrides or {}).items():
            ranges.update(_override(key, override))
        self._ranges = MappingProxyType(ranges)

    def bounds(self, kind: str, component: str | None, unit: str) -> tuple[Decimal, Decimal] | None:
        return self._ranges.get((kind, component, unit))

    def violations(self, values: Sequence[CheckedValue]) -> dict[int, str]:
        """Positions of readings with a value out of range, each with the reason a person reads."""
        if not values:
            return {}
        bounds = [self._ranges.get((v.kind, v.component, v.unit)) for v in values]
        lows = np.array([-np.inf if b is None else float(b[0]) for b in bounds])
        highs = np.array([np.inf if b is None else float(b[1]) for b in bounds])
        numbers = np.array([float(v.value) for v in values])
        outside = np.flatnonzero((numbers < lows) | (numbers > highs))
        reasons: dict[int, str] = {}
        for index in outside.tolist():
            value, (low, high) = values[index], bounds[index]  # type: ignore[misc] # out-of-range implies bounds exist
            what = f"{value.kind} {value.component}" if value.component else value.kind
            reasons.setdefault(value.position, f"{what} {value.value} {value.unit} is outside the plausible range {low}..{high}")
        return reasons


def _override(key: str, override: RangeOverride) -> dict[tuple[str, str | None, str], tuple[Decimal, Decimal]]:
    kind_name, _, component_name = key.partition(".")
    kind = CATALOGUE.get(kind_name)
    if kind is None:
        raise ConfigError(f"plausibility.{key}: no reading kind {kind_name!r} (known: {', '.join(sorted(CATALOGUE))})")
    if component_name and kind.component(component_name) is None:
        raise ConfigError(f"plausibility.{key}: {kind_name} has no component {component_name!r}")
    units = [choice.ucum for choice in kind.units]
    unit = override.unit or units[0]
    if override.unit is None and len(units) > 1:
        raise ConfigError(f"plausibility.{key}: say which unit the bounds are in ({', '.join(units)})")
    if unit not in units:
        raise ConfigError(f"plausibility.{key}: {kind_name} is stored in {', '.join(units)}, not {unit!r}")
    try:
        PlausibleRange(unit, override.low, override.high)
    except ValueError as exc:
        raise ConfigError(f"plausibility.{key}: {exc}") from exc
    return {(kind_name, component_name or None, unit): (override.low, override.high)}
