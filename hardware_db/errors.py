"""Errors raised by hardware_db: an unknown name, a figure the data does not have, or malformed data.

hardware_db knows nothing of the estimator's command line, so its messages name the data, not CLI
flags; ``estimator.hardware`` turns them into user messages with the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HardwareDBError(ValueError):
    """Base class of every hardware_db error; ``str(err)`` is one line."""


class DataError(HardwareDBError):
    """A packaged data file is malformed (names the file and the row)."""


class UnknownNameError(HardwareDBError, LookupError):
    """A look-up by a name the data does not know; carries up to three close known names."""

    def __init__(self, kind: str, name: str, suggestions: tuple[str, ...] = (), known: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = suggestions
        self.known = known
        super().__init__(f"unknown {kind} {name!r}" + (f" (close: {', '.join(suggestions)})" if suggestions else ""))

    def hint(self) -> str:
        """'did you mean a, b?' or a short list of known names."""
        if self.suggestions:
            return "did you mean " + ", ".join(self.suggestions) + "?"
        known = sorted(self.known)
        return "known: " + ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")


class MissingFigureError(HardwareDBError):
    """The data has no published figure of this kind for this item (missing stays missing)."""

    def __init__(self, item: str, what: str, available: tuple[str, ...] = ()) -> None:
        self.item = item
        self.what = what
        self.available = available
        super().__init__(f"{item} has no published {what}" + (f" (it has: {', '.join(available)})"
                                                              if available else ""))


def close_names(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.4) -> tuple[str, ...]:
    """Up to ``n`` known names closest to ``name`` (case-insensitive)."""
    return tuple(difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=n, cutoff=cutoff))
