"""Validation of user numbers: one clear line (``EstimatorInputError``) for anything that is not usable.

Every public entry point (CLI, dashboard, Python API) funnels user numbers through these, so a bad value
gets the same message whichever way it came in. Names are the CLI flag without its dashes.
"""

from __future__ import annotations

import math

from estimator.errors import EstimatorInputError


def number(name: str, value: object, *, minimum: float = 0.0, inclusive: bool = False,
           maximum: float | None = None, hint: str = "") -> float:
    """Parse a user number; reject NaN, inf, non-numbers and out-of-range values with one clear line."""
    if isinstance(value, bool):
        raise EstimatorInputError(f"--{name} must be a number, got {value!r}", hint or f"e.g. --{name} 1e9")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise EstimatorInputError(f"--{name} must be a number, got {value!r}", hint or f"e.g. --{name} 1e9") from None
    if not math.isfinite(v):
        raise EstimatorInputError(f"--{name} must be finite, got {value!r}", hint or f"pass a finite --{name}")
    if (v < minimum) if inclusive else (v <= minimum):
        rel = ">=" if inclusive else ">"
        raise EstimatorInputError(f"--{name} must be {rel} {minimum:g}, got {value!r}",
                                  hint or f"pass --{name} {rel} {minimum:g}")
    if maximum is not None and v > maximum:
        raise EstimatorInputError(f"--{name} must be <= {maximum:g}, got {value!r}",
                                  hint or f"pass --{name} <= {maximum:g}")
    return v


def optional_number(name: str, value: object, **kw) -> float | None:
    """``number`` for an optional input: None stays None."""
    return None if value is None else number(name, value, **kw)


def whole(name: str, value: object, *, minimum: int = 1, maximum: float = 1e15, hint: str = "") -> int:
    """A whole number within [minimum, maximum]: 2.5 is refused, 1e5 and 8.0 are accepted."""
    v = number(name, value, minimum=minimum, inclusive=True, maximum=maximum,
               hint=hint or f"pass --{name} N with {minimum} <= N <= {maximum:g}")
    if v != int(v):
        raise EstimatorInputError(f"--{name} must be a whole number, got {value!r}",
                                  hint or f"e.g. --{name} {max(minimum, 1)}")
    return int(v)


def optional_whole(name: str, value: object, **kw) -> int | None:
    """``whole`` for an optional input: None stays None."""
    return None if value is None else whole(name, value, **kw)


def choice(name: str, value: object, allowed: tuple[str, ...] | dict) -> str:
    """A case-insensitive choice among ``allowed``; one line naming the choices otherwise."""
    p = str(value).strip().lower()
    if p not in allowed:
        raise EstimatorInputError(f"unknown --{name} {value!r}", f"use one of {', '.join(allowed)}")
    return p
