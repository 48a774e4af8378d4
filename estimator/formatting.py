"""The one number formatter (CLI tables, dashboard metrics, benchmark report) and JSON safety.

``fmt`` renders a value with its unit's convention: fractions as percentages, large values with thousands
separators or in scientific notation, small ones with three significant figures. ``json_safe`` replaces
non-finite floats by None so that ``--json`` never prints NaN or Infinity (which are not JSON).
"""

from __future__ import annotations

import math
from typing import Any

PERCENT_UNITS = ("fraction", "ratio")


def fmt(x: Any, unit: str = "") -> str:
    """Readable number: engineering-style with thousands separators or scientific for huge/small values."""
    if x is None:
        return "-"
    if isinstance(x, (str, bool)):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if unit in PERCENT_UNITS and 0 <= x <= 1:
        return f"{x:.1%}"
    if unit == "signed_fraction":  # an error or a change: predicted / reported - 1
        return f"{x:+.0%}"
    if unit == "abs_fraction":  # an absolute error
        return f"{x:.0%}"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e9 or a < 1e-3:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 1:
        return f"{x:,.2f}"
    return f"{x:.3f}"


def metric_text(key: str, value: Any) -> str:
    """A headline metric with its unit from ``estimator.results.METRICS`` (e.g. '236,919,026 USD', '33.2%')."""
    from estimator.results import METRICS

    m = METRICS.get(key)
    unit = m.unit if m else ""
    if value is None:
        return "—"
    if unit == "USD":
        return f"${fmt(value)}"
    text = fmt(value, unit)
    return text if unit in PERCENT_UNITS or not unit or unit == "FLOP" else f"{text} {unit}"


def json_safe(x: Any) -> Any:
    """A copy of ``x`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x
