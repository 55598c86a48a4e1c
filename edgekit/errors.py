"""The one exception hierarchy; each class carries the exit code the CLI returns.

| code | class | meaning |
| ---: | --- | --- |
| 0 | — | success |
| 1 | InternalError | a bug in edgekit (please report it with `--debug` output) |
| 2 | UsageError | bad arguments, paths, shapes or data given by the user |
| 3 | InvalidModelError | a model file that is corrupt, truncated or not a model |
| 4 | UnsupportedModelError | a valid model that edgekit cannot handle (yet) |
| 5 | ValidationError | outputs diverged beyond tolerance |
| 6 | GateError | an accuracy, speed or budget gate failed |
| 7 | EnvironmentProblem | a missing package/provider, a full disk, a denied write |
"""
from __future__ import annotations


class EdgekitError(Exception):
    """Base class: a message meant for the user, and the exit code."""

    exit_code = 1
    title = "error"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InternalError(EdgekitError):
    exit_code = 1
    title = "internal error"


class UsageError(EdgekitError):
    exit_code = 2
    title = "usage error"


class InvalidModelError(EdgekitError):
    exit_code = 3
    title = "invalid model"


class UnsupportedModelError(EdgekitError):
    exit_code = 4
    title = "unsupported model"


class ValidationError(EdgekitError):
    exit_code = 5
    title = "validation failed"


class GateError(EdgekitError):
    exit_code = 6
    title = "gate failed"


class EnvironmentProblem(EdgekitError):
    exit_code = 7
    title = "environment problem"


EXIT_CODES = {cls.exit_code: cls for cls in (
    InternalError, UsageError, InvalidModelError, UnsupportedModelError,
    ValidationError, GateError, EnvironmentProblem,
)}
