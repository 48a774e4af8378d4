"""Validation of user numbers: one clear line (``EstimatorInputError``) for anything that is not usable.

Every public entry point (CLI, dashboard, Python API) funnels user numbers through these, so a bad value
gets the same message whichever way it came in. Names are the CLI flag without its dashes.
"""

from __future__ import annotations

import math

from estimator.errors import EstimatorInputError


def show(value: object, limit: int = 40) -> str:
    """A user value as a message shows it: numbers as ``%g`` (so 1e18 reads the same from the CLI and the API),
    text quoted and shortened (a 5,000-digit argument does not become a 5,000-character message)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if abs(value) < 10 ** 15:
            return str(value)
        if abs(value) < 10 ** 300:
            return f"{float(value):g}"
        return f"an integer of {len(str(abs(value))) if abs(value) < 10 ** 4000 else 'over 4,000'} digits"
    if isinstance(value, float):
        return f"{value:g}"
    text = value if isinstance(value, str) else f"<{type(value).__name__}>"
    if isinstance(value, str) and len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text) if isinstance(value, str) else text


def _float(value: object) -> float:
    """float(value) where a huge integer (or one written out in 5,000 digits) is infinite, not an error."""
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return float(value)  # type: ignore[arg-type]


def number(name: str, value: object, *, minimum: float = 0.0, inclusive: bool = False,
           maximum: float | None = None, hint: str = "") -> float:
    """Parse a user number; reject NaN, inf, non-numbers and out-of-range values with one clear line."""
    if isinstance(value, bool):
        raise EstimatorInputError(f"--{name} must be a number, got {show(value)}", hint or f"e.g. --{name} 1e9")
    try:
        v = _float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise EstimatorInputError(f"--{name} must be a number, got {show(value)}",
                                  hint or f"e.g. --{name} 1e9") from None
    if not math.isfinite(v):
        raise EstimatorInputError(f"--{name} must be finite, got {show(value)}", hint or f"pass a finite --{name}")
    if (v < minimum) if inclusive else (v <= minimum):
        rel = ">=" if inclusive else ">"
        raise EstimatorInputError(f"--{name} must be {rel} {minimum:g}, got {show(value)}",
                                  hint or f"pass --{name} {rel} {minimum:g}")
    if maximum is not None and v > maximum:
        raise EstimatorInputError(f"--{name} must be <= {maximum:g}, got {show(value)}",
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
        raise EstimatorInputError(f"--{name} must be a whole number, got {show(value)}",
                                  hint or f"e.g. --{name} {max(minimum, 1)}")
    return int(v)


def optional_whole(name: str, value: object, **kw) -> int | None:
    """``whole`` for an optional input: None stays None."""
    return None if value is None else whole(name, value, **kw)


def choice(name: str, value: object, allowed: tuple[str, ...] | dict) -> str:
    """A case-insensitive choice among ``allowed``; one line naming the choices otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    p = value.strip().lower()
    if p not in allowed:
        raise EstimatorInputError(f"unknown --{name} {show(value)}", f"use one of {', '.join(allowed)}")
    return p
