"""What an estimate assumed: each input it used, where it came from, and its range if uncertain.

Stages return their own ``Assumptions`` (an immutable, ordered mapping of key -> ``Assumed``) and the
composing ``estimate_*`` function joins them with ``|``; no stage writes into another's record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Assumed:
    """One input the estimate used, where it came from, and its range if uncertain."""

    value: object
    unit: str = ""
    source: str = ""
    low: object = None
    high: object = None

    def to_dict(self) -> dict:
        """Plain JSON-able form: value, unit, source, and low/high where a range is known."""
        d = {"value": self.value, "unit": self.unit, "source": self.source}
        if self.low is not None:
            d["low"], d["high"] = self.low, self.high
        return d


class Assumptions(Mapping[str, Assumed]):
    """An immutable, ordered record of the inputs a stage (or a whole estimate) assumed."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Assumed] | Iterable[tuple[str, Assumed]] = ()) -> None:
        self._items: dict[str, Assumed] = dict(items)

    def __getitem__(self, key: str) -> Assumed:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __or__(self, other: Mapping[str, Assumed]) -> Assumptions:  # type: ignore[override]
        return Assumptions({**self._items, **dict(other)})

    def __repr__(self) -> str:
        return f"Assumptions({list(self._items)})"

    def to_dict(self) -> dict:
        """key -> Assumed.to_dict(), in the order the stages recorded them."""
        return {k: v.to_dict() for k, v in self._items.items()}


def one(key: str, value: object, unit: str = "", source: str = "", low: object = None,
        high: object = None) -> Assumptions:
    """An ``Assumptions`` holding a single entry."""
    return Assumptions({key: Assumed(value, unit, source, low, high)})


def fact(key: str, override: object = None, unit: str = "") -> tuple[float, Assumed]:
    """A documented default from hardware_db/assumptions.csv (or the user's override) and its record."""
    from estimator.hardware import assumption

    a = assumption(key)
    if override is not None:
        return float(override), Assumed(float(override), unit or a.unit, "user input")  # type: ignore[arg-type]
    return float(a.value), Assumed(float(a.value), unit or a.unit, a.source, a.low, a.high)
