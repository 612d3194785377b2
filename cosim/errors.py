"""Exceptions that carry a one-line, user-readable message (file, field, what was expected)."""

from __future__ import annotations


class CosimInputError(ValueError):
    """Bad input from a user: a malformed spec, an unknown name, an impossible mapping.

    The CLI prints `str(err)` as one line and exits with code 2.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.detail = message
        parts = []
        if file:
            parts.append(str(file))
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InfeasibleError(RuntimeError):
    """A configuration that cannot run (e.g. does not fit in memory); engines turn it into a result."""
