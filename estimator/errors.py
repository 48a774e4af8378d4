"""Errors a user can fix: one line naming the problem and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EstimatorInputError(ValueError):
    """Bad input to the estimator. ``str(err)`` is one line: the problem, then the fix."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


def suggest(name: str, known: Iterable[str], n: int = 3) -> str:
    """Return a 'did you mean ...' hint listing the closest known ids."""
    known = list(known)
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=n, cutoff=0.4)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    return "known: " + ", ".join(sorted(known)[:12]) + (" ..." if len(known) > 12 else "")


def click_error_types() -> dict[str, tuple[type[BaseException], ...]]:
    """click's usage-error classes, plus the copies typer >= 0.20 vendors as ``typer._click`` (raised instead).

    Keys: NoSuchOption, UsageError, Abort. Command-line entry points catch these to print one line.
    """
    import click

    mods = [click.exceptions]
    try:
        from typer._click import exceptions as vendored  # type: ignore[import-not-found]

        mods.append(vendored)
    except ImportError:
        pass
    return {n: tuple(getattr(m, n) for m in mods if hasattr(m, n)) for n in ("NoSuchOption", "UsageError", "Abort")}
