"""Plausibility ranges per kind, checked over a whole batch at once with numpy.

A value outside its kind's range (in the canonical unit) is ``implausible_value``, and so is a
blood pressure whose diastolic is not below its systolic. Ranges come from the catalogue and
can be overridden per kind (or per component) in the settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

import numpy as np

from device_adapters.errors import ConfigError
from fhir_mapper.catalogue import CATALOGUE, PlausibleRange

FloatColumn = np.ndarray[tuple[int], np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class RangeOverride:
    low: Decimal
    high: Decimal
    unit: str | None = None
    """Canonical unit the bounds are in; needed only for kinds stored in several (glucose)."""


class CheckedValues:
    """The values of one batch to check, as parallel columns (cheap to fill on the hot path)."""

    __slots__ = ("highs", "labels", "lows", "positions", "values")

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.values: list[float] = []
        self.lows: list[float] = []
        self.highs: list[float] = []
        self.labels: list[tuple[str, str | None, str, Decimal]] = []

    def add(self, position: int, bounds: tuple[float, float], label: tuple[str, str | None, str, Decimal]) -> None:
        """One value of the reading at ``position``: label is (kind, component, unit, value) for the reason."""
        self.positions.append(position)
        self.values.append(float(label[3]))
        self.lows.append(bounds[0])
        self.highs.append(bounds[1])
        self.labels.append(label)


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

    def float_bounds(self, kind: str, component: str | None, unit: str) -> tuple[float, float]:
        """Bounds for the vectorized check; a kind without a range is unbounded."""
        bounds = self._ranges.get((kind, component, unit))
        return (-math.inf, math.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))

    def violations(self, checked: CheckedValues) -> dict[int, str]:
        """Positions of readings with a value out of range, each with the reason a person reads."""
        reasons: dict[int, str] = {}
        for index in self.outside(checked.values, np.array(checked.lows), np.array(checked.highs)):
            reasons.setdefault(checked.positions[index], self.reason(*checked.labels[index]))
        return reasons

    @staticmethod
    def outside(values: list[float], lows: FloatColumn, highs: FloatColumn) -> list[int]:
        """Indexes of the values outside their bounds, for a whole batch at once."""
        if not values:
            return []
        column = np.array(values, dtype=np.float64)
        found: list[int] = np.flatnonzero((column < lows) | (column > highs)).tolist()
        return found

    def reason(self, kind: str, component: str | None, unit: str, value: Decimal) -> str:
        low, high = self._ranges[kind, component, unit]
        what = f"{kind} {component}" if component else kind
        return f"{what} {value} {unit} is outside the plausible range {low}..{high}"


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
