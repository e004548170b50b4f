"""The only SQL codeindex writes: literals, path globs and the ``Filter`` value.

Everything above storage says what it wants as a :class:`Filter` (or calls a Store
method that names its question); this module turns that into LanceDB's SQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

HAS_VECTOR = "has_vector = true"
PENDING = "has_vector = false AND embed_error = ''"
EMBED_FAILED = "embed_error != ''"
SKIPPED = "skip_reason != ''"
NOT_SKIPPED = "skip_reason = ''"


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(glob: str) -> str:
    """Translate a path glob to a SQL LIKE pattern (escape char ``\\``).

    ``*`` and ``**`` match any run of characters (including ``/``), ``?`` one
    character. A glob without ``/`` also matches in any directory (like git).
    """
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    like = re.sub("%+", "%", "".join(out)).replace("%/%", "%")
    if "/" not in glob and not like.startswith("%"):
        # "*.py" already matches anywhere; "main.go" should match "cmd/main.go" too.
        return like
    return like.lstrip("/") if like.startswith("/") else like


def glob_filter(glob: str) -> str:
    like = glob_to_like(glob)
    clause = f"path LIKE {sql_str(like)} ESCAPE '\\'"
    if "/" not in glob and not like.startswith("%"):
        clause = f"({clause} OR path LIKE {sql_str('%/' + like)} ESCAPE '\\')"
    return clause


@dataclass(frozen=True, slots=True)
class Filter:
    """Which chunks or files a read is about; empty fields do not filter.

    ``language`` (any case), ``glob`` (see :func:`glob_to_like`), ``skipped`` (files
    only: True skipped files, False indexed ones), ``path_prefix`` (paths starting with
    it), ``path`` (exactly this path), ``embedded`` (chunks only: with or without a
    vector)."""

    language: str = ""
    glob: str = ""
    skipped: bool | None = None
    path_prefix: str = ""
    path: str = ""
    embedded: bool | None = None

    def to_sql(self) -> str | None:
        clauses = []
        if self.language:
            clauses.append(f"language = {sql_str(self.language.lower())}")
        if self.glob:
            clauses.append(glob_filter(self.glob))
        if self.skipped is True:
            clauses.append(SKIPPED)
        elif self.skipped is False:
            clauses.append(NOT_SKIPPED)
        if self.path_prefix:
            clauses.append(f"path LIKE {sql_str(_like_escape(self.path_prefix) + '%')} ESCAPE '\\'")
        if self.path:
            clauses.append(f"path = {sql_str(self.path)}")
        if self.embedded is not None:
            clauses.append(HAS_VECTOR if self.embedded else "has_vector = false")
        return " AND ".join(clauses) or None


def where_of(where: Filter | None) -> str | None:
    return where.to_sql() if where is not None else None


def and_where(clause: str | None, where: Filter | None) -> str | None:
    """``clause`` AND ``where`` (parenthesised), either of them possibly absent."""
    sql = where_of(where)
    return " AND ".join(c for c in (clause, f"({sql})" if sql else None) if c) or None


def symbol_matches(names: Sequence[str]) -> str:
    """Chunks whose symbol is one of ``names`` (lower case) or ends with ``.name``."""
    ors = []
    for n in names:
        ors.append(f"lower(symbol) = {sql_str(n)}")
        ors.append(f"lower(symbol) LIKE {sql_str('%.' + _like_escape(n))} ESCAPE '\\'")
    return "(" + " OR ".join(ors) + ")"


def overlapping(path: str, start: int, end: int) -> str:
    """Chunks of ``path`` overlapping lines [start, end] that have a vector."""
    return (
        f"path = {sql_str(path)} AND start_line <= {int(end)} AND end_line >= {int(start)}"
        f" AND {HAS_VECTOR}"
    )


def older_rows_of(path: str, first_fragment: int) -> str:
    """Rows of ``path`` in fragments before ``first_fragment`` (a row address is its
    fragment id << 32 | its offset in the fragment)."""
    return f"{sql_in('path', [path])} AND _rowaddr < {first_fragment << 32}"


def embedded_with_hash(hashes: Sequence[str]) -> str:
    """Chunks with a vector whose content hash is one of ``hashes``."""
    return f"{sql_in('content_hash', hashes)} AND {HAS_VECTOR}"


def pending(priority: int) -> str:
    return f"{PENDING} AND priority = {int(priority)}"
