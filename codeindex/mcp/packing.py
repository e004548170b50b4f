"""Fit ranked search hits into a token budget (pure functions: no I/O, no model).

Used by the MCP ``search_code`` tool's ``max_tokens`` option, so an assistant can ask
for "the best code that fits in N tokens" instead of guessing ``k``.

Token estimate: ``ceil(chars / 4)`` of the JSON the hits are sent as. It is
model-independent and cheap; real tokenizers give about 3-4 characters per token on
source code, so the budget is a close, slightly generous estimate, not exact.

Contract of :func:`pack`: the returned list, serialised with
``json.dumps(results, ensure_ascii=False)``, is at most ``CHARS_PER_TOKEN * max_tokens``
characters; hits keep their rank order (a file's hits are merged at the rank of its best
hit); a hit that does not fit whole is trimmed to a prefix of its lines (``truncated``)
only if at least ``MIN_SNIPPET_LINES`` lines fit, and packing stops at the first hit
that does not fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from codeindex.errors import CodeIndexError

CHARS_PER_TOKEN = 4
MIN_SNIPPET_LINES = 3  # a shorter trimmed snippet is not worth the metadata around it
MAX_TOKENS_LIMIT = 200_000  # larger budgets than any model context are refused
ELISION = "⋮"  # separates non-adjacent sections of one file in a merged hit


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (``ceil(len / CHARS_PER_TOKEN)``)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def json_chars(obj: Any) -> int:
    """Length of ``obj`` as the JSON the budget is measured on."""
    return len(json.dumps(obj, ensure_ascii=False))


def check_max_tokens(max_tokens: int) -> None:
    """Raise CodeIndexError unless 0 (no packing) or 1..MAX_TOKENS_LIMIT."""
    if not 0 <= int(max_tokens) <= MAX_TOKENS_LIMIT:
        raise CodeIndexError(
            f"max_tokens must be 0 (no budget) or between 1 and {MAX_TOKENS_LIMIT} "
            f"(got {max_tokens})."
        )


def merge_by_file(hits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per file, at the rank of the file's best hit.

    Each entry has the hit fields (path, start_line, end_line, score, symbol,
    language, snippet) plus ``ranges``: the [start, end] line ranges its snippet
    shows, in line order. Overlapping or adjacent ranges are joined (overlapping lines
    appear once); separate ranges are joined with an ``⋮`` line.
    """
    order: list[str] = []
    by_path: dict[str, list[dict[str, Any]]] = {}
    for hit in hits:
        if hit["path"] not in by_path:
            order.append(hit["path"])
            by_path[hit["path"]] = []
        by_path[hit["path"]].append(hit)
    return [_merge_one(by_path[path]) for path in order]


def _merge_one(hits: list[dict[str, Any]]) -> dict[str, Any]:
    # Sections are (start, end, lines, exact); exact is False when a snippet's line
    # count does not match its range (e.g. a split minified line), so it can't be
    # merged line-wise with a neighbour.
    sections: list[tuple[int, int, list[str], bool]] = []
    for hit in sorted(hits, key=lambda h: (h["start_line"], h["end_line"])):
        start, end = int(hit["start_line"]), int(hit["end_line"])
        lines = (hit.get("snippet") or "").split("\n")
        exact = len(lines) == end - start + 1
        if sections:
            p_start, p_end, p_lines, p_exact = sections[-1]
            if start <= p_end + 1 and exact and p_exact:
                extra = lines[p_end + 1 - start :] if end > p_end else []
                sections[-1] = (p_start, max(p_end, end), p_lines + extra, True)
                continue
        sections.append((start, end, lines, exact))
    texts = ["\n".join(lines) for _, _, lines, _ in sections]
    best = hits[0]  # callers pass hits in rank order
    symbols = list(dict.fromkeys(h.get("symbol") or "" for h in hits))
    return {
        "path": best["path"],
        "start_line": sections[0][0],
        "end_line": max(end for _, end, _, _ in sections),
        "score": max(h["score"] for h in hits),
        "symbol": ", ".join(s for s in symbols if s),
        "language": best.get("language", ""),
        "snippet": f"\n{ELISION}\n".join(texts),
        "ranges": [[start, end] for start, end, _, _ in sections],
    }


def _trim(entry: dict[str, Any], budget_chars: int) -> dict[str, Any] | None:
    """The longest line-prefix of ``entry``'s snippet that fits, or None."""
    lines = entry["snippet"].split("\n")

    def with_lines(n: int) -> dict[str, Any]:
        return {**entry, "snippet": "\n".join(lines[:n]), "truncated": True}

    lo, hi = 0, len(lines) - 1  # the whole snippet did not fit
    while lo < hi:  # largest n in [0, len-1] whose entry fits
        mid = (lo + hi + 1) // 2
        if json_chars(with_lines(mid)) <= budget_chars:
            lo = mid
        else:
            hi = mid - 1
    if lo < MIN_SNIPPET_LINES:
        return None
    return with_lines(lo)


def pack(hits: Sequence[dict[str, Any]], max_tokens: int) -> tuple[list[dict[str, Any]], int]:
    """Merge ``hits`` (rank order) by file and keep the best that fit ``max_tokens``.

    Returns (packed entries, number of input hits left out entirely).
    """
    check_max_tokens(max_tokens)
    budget = CHARS_PER_TOKEN * max_tokens
    used = 2  # the enclosing "[]"
    packed: list[dict[str, Any]] = []
    kept_hits = 0
    per_file: dict[str, int] = {}
    for hit in hits:
        per_file[hit["path"]] = per_file.get(hit["path"], 0) + 1
    for entry in merge_by_file(hits):
        sep = 2 if packed else 0  # ", " between list items
        room = budget - used - sep
        size = json_chars(entry)
        if size > room:
            trimmed = _trim(entry, room)
            if trimmed is not None:
                packed.append(trimmed)
                kept_hits += per_file[entry["path"]]
            break
        packed.append(entry)
        used += sep + size
        kept_hits += per_file[entry["path"]]
    return packed, len(hits) - kept_hits
