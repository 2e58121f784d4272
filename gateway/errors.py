"""Domain errors. Their message is a complete, one-line reason fit to show a user."""

from __future__ import annotations


class DomainError(Exception):
    """A request the CRM refuses; ``str(error)`` says why."""


class NotFound(DomainError):
    """The named thing does not exist."""


class Invalid(DomainError):
    """The input is malformed or breaks a rule (a CLI exit 2, an HTTP 400)."""


class Conflict(DomainError):
    """The input clashes with what is stored (duplicate name, UID in use)."""


class ReadOnly(DomainError):
    """The thing exists but may not be changed from this side (an HTTP 403/409)."""
