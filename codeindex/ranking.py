"""Fusion of the vector and full-text result lists, plus code-aware re-ranking.

Pure functions over plain dicts (rows with id, path, symbol, start_line, end_line,
text): no storage or model imports, so the ranking is unit-testable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

RRF_K = 60  # the usual reciprocal-rank-fusion constant
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEST_PATH = re.compile(r"(^|/)(tests?|__tests__|spec)(/|$)|(_test|\.test|\.spec|_spec)\.")
_VENDOR_PATH = re.compile(r"(^|/)(vendor|third_party|node_modules|dist|build)/|\.min\.")


# The code-aware rules, by name (each can be switched off for an ablation).
RULES: tuple[str, ...] = ("symbol", "definition", "path", "tests", "vendor")


@dataclass(frozen=True)
class Ranking:
    """Which retrievers and rules a search uses; the default is what users get.

    The benchmark (``benchmarks/quality.py``) switches sides and single rules off to
    measure what each is worth."""

    lexical: bool = True
    vector: bool = True
    rules: frozenset[str] = field(default_factory=lambda: frozenset(RULES))


def query_terms(query: str) -> list[str]:
    """Lower-cased identifier-like words of the query (length ≥ 2)."""
    return [w.lower() for w in _WORD.findall(query) if len(w) >= 2]


def fuse(
    vector_hits: Sequence[dict[str, Any]],
    text_hits: Sequence[dict[str, Any]],
    query: str,
    vector_weight: float = 1.0,
    text_weight: float = 1.0,
    rules: frozenset[str] = frozenset(RULES),
) -> list[dict[str, Any]]:
    """Reciprocal rank fusion of two ranked lists, then code-aware boosts.

    Returns rows (each from whichever list had it) sorted by descending ``score``;
    the score is the fused RRF value scaled so that rank 1 in both lists with no
    boosts scores 1.0.
    """
    scores: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    for weight, hits in ((vector_weight, vector_hits), (text_weight, text_hits)):
        for rank, row in enumerate(hits):
            cid = row["id"]
            scores[cid] = scores.get(cid, 0.0) + weight / (RRF_K + rank + 1)
            rows.setdefault(cid, row)
    terms = query_terms(query)
    norm = (vector_weight + text_weight) / (RRF_K + 1)
    fused = []
    for cid, base in scores.items():
        row = dict(rows[cid])
        row["score"] = round(base * _boost(row, terms, query, rules) / norm, 6)
        fused.append(row)
    fused.sort(key=lambda r: (-r["score"], r["path"], r["start_line"]))
    return _drop_overlaps(fused)


def _boost(row: dict[str, Any], terms: list[str], query: str, rules: frozenset[str]) -> float:
    """Multiplicative boosts: symbol-name matches matter most in code search."""
    boost = 1.0
    symbol = (row.get("symbol") or "").lower()
    if "symbol" in rules and symbol and terms:
        last = symbol.rsplit(".", 1)[-1]
        flat_q = "".join(terms)
        if last in terms or symbol in terms or last == flat_q or last.replace("_", "") == flat_q:
            boost *= 1.5  # the query names this definition
        elif any(t in symbol for t in terms if len(t) >= 4):
            boost *= 1.15
    if "definition" in rules and symbol:
        boost *= 1.05  # a whole definition reads better than a line window
    path = (row.get("path") or "").lower()
    if "path" in rules and terms and any(t in path for t in terms if len(t) >= 4):
        boost *= 1.05
    if "tests" in rules and not _mentions_tests(query) and _TEST_PATH.search(path):
        boost *= 0.9
    if "vendor" in rules and _VENDOR_PATH.search(path):
        boost *= 0.8
    return boost


def _mentions_tests(query: str) -> bool:
    return bool(re.search(r"\btest|spec\b", query, re.I))


def _drop_overlaps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the best of chunks that overlap within one file (they show the same code)."""
    kept: list[dict[str, Any]] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        s, e = row["start_line"], row["end_line"]
        taken = spans.setdefault(row["path"], [])
        if any(s <= te and ts <= e for ts, te in taken):
            continue
        taken.append((s, e))
        kept.append(row)
    return kept
