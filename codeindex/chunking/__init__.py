"""Chunking: turn one file's text into :class:`~codeindex.types.Chunk` values.

* :func:`chunk_text` — whole-file chunking: syntax-aware (tree-sitter) for the languages
  in :data:`~codeindex.languages.SYNTAX_LANGUAGES`, line windows otherwise.
* :func:`chunk_stream` — streaming line windows for files over the stream threshold;
  identical to ``line_chunks(path, iter_lines(decode(data)), ...)`` in bounded memory.

Every chunk satisfies the limits in :class:`~codeindex.config.Settings`
(``max_chunk_lines``, ``max_chunk_chars``, ``max_chunk_tokens - 2`` word pieces), text is
never truncated or lost, whitespace-only chunks are dropped, and the output is
deterministic. Line numbers follow the line model in :mod:`codeindex.chunking.lines`.
"""

from __future__ import annotations

import logging

from codeindex.chunking.lines import decode, iter_lines, line_chunks
from codeindex.chunking.streaming import chunk_stream
from codeindex.chunking.tokens import TokenCounter, heuristic_token_count, token_budget
from codeindex.config import Settings
from codeindex.languages import SYNTAX_LANGUAGES
from codeindex.types import Chunk

__all__ = [
    "TokenCounter",
    "chunk_stream",
    "chunk_text",
    "decode",
    "heuristic_token_count",
    "iter_lines",
    "line_chunks",
    "token_budget",
]

log = logging.getLogger(__name__)


def chunk_text(
    path: str,
    text: str,
    language: str,
    settings: Settings,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Chunk a whole decoded file (see :func:`decode`).

    Syntax-aware when ``language`` is in SYNTAX_LANGUAGES and parsing works; otherwise
    (unknown language, grammar missing, parser error, or a minified file whose mean
    line is longer than ``max_line_chars``) the line-window chunker. The
    chunks' line ranges never overlap and together cover every non-blank line.
    """
    # Mostly over-long lines (minified bundles, generated data) would end up as line
    # pieces anyway, after an expensive parse: skip tree-sitter for them.
    minified = len(text) > settings.max_line_chars * (text.count("\n") + 1)
    if language in SYNTAX_LANGUAGES and not minified:
        # Imported lazily so line-only callers never load tree-sitter.
        from codeindex.chunking.syntax import syntax_chunks

        try:
            return syntax_chunks(path, text, language, settings, count_tokens)
        except Exception as exc:  # a grammar/parser problem must not lose the file
            log.debug("syntax chunking failed for %s (%s); using line windows", path, exc)
    return list(line_chunks(path, iter_lines(text), language, settings, count_tokens))
