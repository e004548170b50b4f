"""Errors raised across codeindex. Every message says what went wrong and what to do."""

from __future__ import annotations


class CodeIndexError(Exception):
    """Base class: a problem the user can act on. The CLI prints it and exits 1."""


class ConfigError(CodeIndexError):
    """A setting is invalid (bad value in pyproject/.codeindex.toml/environment)."""


class IndexMissingError(CodeIndexError):
    """No index exists yet at the index directory."""


class IncompatibleIndexError(CodeIndexError):
    """The index was built with another model, schema or options; re-index to search."""


class BadCursorError(CodeIndexError):
    """A pagination cursor is malformed, for another query, or stale."""


class PathOutsideRootError(CodeIndexError):
    """A requested path escapes the indexed root or is ignored/deny-listed."""


class LockBusyError(CodeIndexError):
    """Another process holds the index's writer lock."""
