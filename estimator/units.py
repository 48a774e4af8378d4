"""The project's one pint unit registry.

FLOP is its own base dimension, so FLOP/s is not 1/s and a FLOP count cannot be
added to a plain number by accident. CO2e is a mass of its own dimension
(``gCO2e``), so a carbon figure cannot be confused with a mass of something else.
Quantities live at the API boundary; formulas inside work on plain floats in the
units named by their variable suffixes (``_flops``, ``_s``, ``_w``, ``_j``...).

The registry is built on first use, so the ``estimate --json`` path, which needs only
floats, does not pay for importing pint.
"""

from __future__ import annotations

from functools import cache


@cache
def registry():
    """The shared ``pint.UnitRegistry`` with FLOP, CO2e and USD defined."""
    import pint

    # No on-disk cache: pint's ":auto:" cache (in ~/.cache/pint, keyed by file contents) records absolute paths of
    # the venv that wrote it, so a later venv with the same pint fails once that venv is gone. The parse costs
    # ~0.1 s, paid only when a quantity is first asked for (the --json path never is).
    ureg = pint.UnitRegistry()
    ureg.define("FLOP = [flop] = flop")
    ureg.define("gCO2e = [co2e_mass] = gco2e")
    ureg.define("kgCO2e = 1000 * gCO2e")
    ureg.define("tCO2e = 1e6 * gCO2e")
    ureg.define("USD = [currency] = usd = dollar")
    return ureg


def Q_(value, unit: str | None = None):  # noqa: N802 - pint's conventional name
    """A quantity in the shared registry."""
    return registry().Quantity(value, unit)


def __getattr__(name: str):
    if name == "ureg":
        return registry()
    raise AttributeError(name)


__all__ = ["registry", "Q_", "ureg"]  # noqa: F822 - `ureg` is served lazily by the module __getattr__ above
