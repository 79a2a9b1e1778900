"""Errors the simulator reports to its user.

:class:`SimError` is the base of every error the project raises on purpose; the command line
prints such errors as one line instead of a traceback. :class:`ScenarioError` says what is
wrong in a scenario file: where (file and line), which key, the value found there and what
would be accepted instead.
"""

from __future__ import annotations

from typing import Any, Final

_VALUE_WIDTH: Final = 80


class _NoValue:
    """Marks a :class:`ScenarioError` that has no offending value (e.g. a missing key)."""

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __reduce__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()


class SimError(Exception):
    """Base of the errors the simulator raises on purpose (bad input, impossible requests)."""


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _VALUE_WIDTH:
        text = text[: _VALUE_WIDTH - 3] + "..."
    return text


class ScenarioError(SimError):
    """A scenario that cannot be used, located as precisely as the input allows.

    ``key`` is the dotted path of the offending entry (``"channel.noise"``,
    ``"servers.sites[0].position"``; empty for problems of the whole file), ``value`` what was
    written there (:data:`NO_VALUE` when nothing was), ``allowed`` a text of what would be
    accepted, ``file`` and ``line`` (1-based) where it was written. ``str()`` is one line,
    ``file:line: key = value: message; allowed: ...``, so that it can be shown to a user as is.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str = "",
        value: Any = NO_VALUE,
        allowed: str = "",
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.value = value
        self.allowed = allowed
        self.file = file
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.message,), self.__dict__)

    def __str__(self) -> str:
        parts = []
        if self.file and self.line:
            parts.append(f"{self.file}:{self.line}: ")
        elif self.file:
            parts.append(f"{self.file}: ")
        elif self.line:
            parts.append(f"line {self.line}: ")
        if self.key:
            parts.append(self.key)
            if self.value is not NO_VALUE:
                parts.append(f" = {_short_repr(self.value)}")
            parts.append(": ")
        parts.append(self.message)
        if self.allowed and not self.message.endswith(self.allowed):
            parts.append(f"; allowed: {self.allowed}")
        return " ".join("".join(parts).splitlines())
