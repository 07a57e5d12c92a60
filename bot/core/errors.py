"""Domain errors. The CLI turns these into one clear message and exit code 1."""

from __future__ import annotations


class DocTocTocError(Exception):
    """Base class of every error the bot reports to a person."""


class ConfigError(DocTocTocError):
    """The config file is invalid. `messages` holds one line per problem."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


class StorageError(DocTocTocError):
    """The database cannot be opened or migrated."""


class CollectorError(DocTocTocError):
    """A source failed for this cycle (network error, rate limit, server error)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class SourceDisabled(DocTocTocError):
    """A source or channel lacks what it needs to run (e.g. a secret); the rest runs."""


class ClassifierError(DocTocTocError):
    """The classifier model is missing or cannot be loaded."""


class CorrectionError(DocTocTocError):
    """A correction cannot be recorded (unknown post, contradictory labels...)."""


class InputError(DocTocTocError):
    """A file given on the command line is malformed."""
