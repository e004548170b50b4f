"""Hybrid ranking: fuse the vector and full-text candidates, then apply code-aware rules.

Pure functions over plain dicts (rows with id, path, language, symbol, start_line,
end_line and ``_distance`` from the vector side or ``_score`` from the full-text side):
no storage or model imports, so every rule is unit-testable on its own.

How a query is ranked (:func:`rank`):

1. **Fusion.** Each side's scores are normalised to [0, 1] (cosine similarity min-max
   over its candidates; BM25 divided by the best) and mixed with weights that depend on
   the query (:func:`analyze`): a symbol-like query (``HTTPException``, ``Rack::Response``,
   ``parse_config``) leans on the lexical side, a question in words on the vector side.
2. **Rules** (:data:`RULES`), each switchable for ablations (``benchmarks/quality.py
   --variants -RULE``). Their measured effect: NDCG@10 on the 19-repository
   development split with all rules (0.892) minus without that one rule (2026-11-29,
   commit 631aa18; both sides fused with no rule at all: 0.746):

   ============  ==============================================================  =========
   rule          what it does                                                    effect
   ============  ==============================================================  =========
   definition    a chunk defining a symbol the query names ranks first; such     +0.007
                 definitions are looked up and injected even when neither side   (symbol
                 retrieved them (``definitions`` argument)                       +0.033)
   file_name     query words that cover the file's name (``JsonObject.java`` for +0.021
                 "JSON object ..."; the folder for ``mod.rs``/``index.ts``) lift
                 it; a file named exactly like a queried symbol lifts more
   directory     query words in the file's folders lift it (weaker)              +0.004
   coherence     a file with several matching chunks lifts its best chunk        +0.019
   file_decay    the n-th chunk of one file is worth 0.5^n: the top ten shows    +0.009
                 ten places, not five slices of one file
   demote_docs   prose (Markdown, reST, text) and data files rank below code     +0.003
                 unless the query asks for documentation
   demote_tests  tests, then examples, docs, vendored/compat/legacy code, build  +0.009
                 output, dot-folders and stubs rank below the code they exercise
                 unless the query asks for them
   ============  ==============================================================  =========

   The rules overlap (a README is both prose and often in no source folder), so the
   effects do not add up to the whole: without every rule the score is 0.746.

3. Chunks overlapping a better chunk of the same file are dropped (they show the same
   code), so the same function never appears twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from codeindex.types import INDEX_FILE_STEMS

RULES: tuple[str, ...] = (
    "definition",
    "file_name",
    "directory",
    "coherence",
    "file_decay",
    "demote_docs",
    "demote_tests",
)

# Candidates taken from each side: file-level rules (coherence, decay) need more than
# the page; 200 of each measured better than 50 or 100 and costs a few milliseconds.
CANDIDATES = 200

# Fusion weight of the lexical side (the vector side gets the rest).
LEXICAL_WEIGHT_SYMBOL = 0.7
LEXICAL_WEIGHT_WORDS = 0.5
DEFINITION_BOOST = 1.8  # × a chunk that defines a named symbol (at least a mid score)
QUALIFIED_BOOST = 1.2  # × again when the whole qualified name matches (Rack::Response)
FILE_NAME_BOOST = 0.5  # × (1 + this × share of the file name's words the query covers)
FILE_NAMED_AS_SYMBOL = 1.5  # × a file whose name is a symbol the query names
DIRECTORY_BOOST = 0.2  # × (1 + this × share of query words found in the folders)
COHERENCE = 0.3  # a file's best chunk gains this × the sum of its next three
FILE_DECAY = 0.5  # the n-th chunk of a file (0-based) is worth FILE_DECAY ** n
DOCS_FACTOR = 0.5
TESTS_FACTOR = 0.6
AUX_FACTOR = 0.7  # examples, benchmarks, docs, vendored/compat code, stubs, dot-folders
INJECTED_FLOOR = 0.5  # an injected definition counts as a mid-scoring candidate

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:::|\.|#|->)[A-Za-z_][A-Za-z0-9_]*)*")
_QUAL_SEP = re.compile(r"::|\.|#|->")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_IDENT_SHAPE = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]|[A-Za-z][0-9]")
# Words of a code question that say nothing about which code.
_STOP_WORDS = (
    "a an the of in on at to for from by with and or is are was be been how what where "
    "when which who why does do did it its this that these those into via use used "
    "using uses work works handle handles handled handling implement implemented "
    "implementation code function method class file files"
)
_STOP = frozenset(_STOP_WORDS.split())
DOC_LANGUAGES = frozenset({"markdown", "rst", "text"})
DATA_LANGUAGES = frozenset({"json", "csv", "xml", "yaml", "toml", "ini", "html"})
_TEST_PATH = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)(/|$)"
    r"|(_test|\.test|\.spec|_spec|Tests?|Spec)\.[A-Za-z]+$|(^|/)test_[^/]*$"
)
# Code beside the product: examples, docs, benchmarks, vendored or compatibility copies,
# build output, tool folders (.github, .vscode ...), and type-declaration stubs.
_AUX_PATH = re.compile(
    r"(^|/)(docs?|examples?|samples?|demos?|benchmarks?|vendor(ed)?|third[_-]?party"
    r"|node_modules|_?compat|legacy|deprecated|dist|build)(/|$)"
    r"|(^|/)\.[^/]+/|\.d\.ts$|\.pyi$"
)
_WANTS_TESTS = re.compile(r"\b(tests?|specs?|testing)\b", re.I)
_WANTS_DOCS = re.compile(r"\b(docs?|documentation|readme|guide|examples?)\b", re.I)


@dataclass(frozen=True)
class Ranking:
    """Which retrievers and rules a search uses; the default is what users get.

    The benchmark (``benchmarks/quality.py``) switches sides and single rules off to
    measure what each is worth."""

    lexical: bool = True
    vector: bool = True
    rules: frozenset[str] = field(default_factory=lambda: frozenset(RULES))


@dataclass(frozen=True)
class QueryShape:
    """What :func:`rank` needs to know about a query."""

    words: tuple[str, ...]  # stemmed content words, identifiers split into parts
    symbols: tuple[tuple[str, ...], ...]  # identifier-like names, qualified parts kept
    symbol_like: bool  # the query is (nearly) just a name: lean on the lexical side
    wants_tests: bool
    wants_docs: bool

    @cached_property
    def names(self) -> frozenset[str]:
        """Normalised last parts of the named symbols (what a definition is called)."""
        return frozenset(_norm(parts[-1]) for parts in self.symbols)

    @cached_property
    def qualified(self) -> frozenset[str]:
        return frozenset(_norm(".".join(p)) for p in self.symbols if len(p) > 1)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper (``routers`` → ``rout``, ``handling`` → ``handl``)."""
    w = word.lower()
    for suffix in ("ing", "ers", "er", "es", "ed", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def split_words(text: str) -> list[str]:
    """Lower-cased words of text, compound identifiers split (``getHTTPUrl`` → get http url)."""
    out: list[str] = []
    for segment in re.split(r"[^A-Za-z0-9]+", text):
        if segment:
            out.extend(p.lower() for p in (_PARTS.findall(segment) or [segment]))
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _words_match(a: str, b: str) -> bool:
    """Equal stems, or one a prefix (≥ 4 letters) of the other: router ~ routing."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 4 and long_.startswith(short)


@lru_cache(maxsize=512)
def analyze(query: str) -> QueryShape:
    """Words, named symbols and intent of a query.

    A token names a symbol when it looks like one (``snake_case``, ``camelCase``,
    ``HTTPServer``, ``v2``, a qualified ``A::B``/``a.b``), or when the query is one or
    two words and the token is capitalised (``Depends``) or the query's only word."""
    tokens = _WORD.findall(query)
    symbols: list[tuple[str, ...]] = []
    for qual in _QUALIFIED.findall(query):
        parts = tuple(p for p in _QUAL_SEP.split(qual) if p)
        looks = "_" in qual.strip("_") or bool(_IDENT_SHAPE.search(qual))
        short = len(tokens) <= 2 and qual[:1].isupper()
        if len(parts) > 1 or looks or short or len(tokens) == 1:
            symbols.append(parts)
    words = [stem(w) for w in split_words(query) if w not in _STOP and len(w) >= 2]
    return QueryShape(
        words=tuple(dict.fromkeys(words)),
        symbols=tuple(symbols),
        symbol_like=len(tokens) == 1 or (len(tokens) <= 3 and bool(symbols)),
        wants_tests=bool(_WANTS_TESTS.search(query)),
        wants_docs=bool(_WANTS_DOCS.search(query)),
    )


def definition_names(query: str) -> list[str]:
    """Symbol names worth looking up as definitions for ``query`` (may be empty)."""
    return sorted({parts[-1] for parts in analyze(query).symbols if len(parts[-1]) >= 2})


def is_definition_of(row: dict[str, Any], shape: QueryShape) -> bool:
    """The chunk defines a symbol the query names (by its last name part)."""
    symbol = row.get("symbol") or ""
    if not symbol or not shape.symbols:
        return False
    return _norm(symbol.rsplit(".", 1)[-1]) in shape.names or _norm(symbol) in shape.qualified


# ------------------------------------------------------------------ fusion
def _candidates(
    vector_hits: Sequence[dict[str, Any]],
    text_hits: Sequence[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Rows by id with ``_v`` and ``_l``: each side's score normalised to [0, 1]."""
    rows: dict[str, dict[str, Any]] = {}
    if vector_hits:
        sims = [1.0 - float(r.get("_distance", 1.0)) for r in vector_hits]
        hi, lo = max(sims), min(sims)
        for r, s in zip(vector_hits, sims, strict=True):
            rows.setdefault(r["id"], dict(r))["_v"] = (s - lo) / (hi - lo) if hi > lo else 1.0
    if text_hits:
        hi = max(float(r.get("_score", 0.0)) for r in text_hits)
        for r in text_hits:
            score = float(r.get("_score", 0.0))
            row = rows.setdefault(r["id"], dict(r))
            row["_l"] = score / hi if hi > 0 else 0.0
            if "text" in r and "text" not in row:
                row["text"] = r["text"]  # one side may have read the text, the other not
    return rows


def fused_score(row: dict[str, Any], shape: QueryShape) -> float:
    """The query-weighted mix of the normalised vector and lexical scores."""
    wl = LEXICAL_WEIGHT_SYMBOL if shape.symbol_like else LEXICAL_WEIGHT_WORDS
    return wl * row.get("_l", 0.0) + (1.0 - wl) * row.get("_v", 0.0)


# ------------------------------------------------------------------ rules
def definition_factor(row: dict[str, Any], shape: QueryShape, score: float) -> float:
    """The new score of a chunk under the definition rule (unchanged if not one)."""
    if not is_definition_of(row, shape):
        return score
    boosted = max(score, INJECTED_FLOOR) * DEFINITION_BOOST
    if shape.qualified and _norm(row.get("symbol") or "") in shape.qualified:
        boosted *= QUALIFIED_BOOST
    return boosted


@lru_cache(maxsize=8192)
def file_name_words(path: str) -> tuple[tuple[str, ...], str]:
    """(stemmed words of the file's name, the name without extension); an index-like
    file (``mod.rs``, ``index.ts``, ``__init__.py``) is named by its folder."""
    parts = path.split("/")
    name = parts[-1]
    base = name.rsplit(".", 1)[0] if "." in name else name
    if base.lower() in INDEX_FILE_STEMS and len(parts) > 1:
        base = parts[-2]
    return tuple(stem(w) for w in split_words(base)), base


@lru_cache(maxsize=8192)
def folder_words(path: str) -> frozenset[str]:
    """Stemmed words of the folders above a file."""
    return (
        frozenset(stem(w) for w in split_words(path.rsplit("/", 1)[0]))
        if "/" in path
        else frozenset()
    )


def file_name_factor(path: str, shape: QueryShape) -> float:
    """× for query words covering the file's name; more when it is a named symbol."""
    if not shape.words:
        return 1.0
    name_words, base = file_name_words(path)
    factor = 1.0
    if name_words:
        covered = sum(1 for w in name_words if any(_words_match(w, q) for q in shape.words))
        factor *= 1.0 + FILE_NAME_BOOST * covered / len(name_words)
    if shape.symbols and _norm(base) in shape.names:
        factor *= FILE_NAMED_AS_SYMBOL
    return factor


def directory_factor(path: str, shape: QueryShape) -> float:
    """× for the share of query words found among the file's folder names."""
    folders = folder_words(path)
    if not shape.words or not folders:
        return 1.0
    found = sum(1 for q in shape.words if any(_words_match(q, f) for f in folders))
    return 1.0 + DIRECTORY_BOOST * found / len(shape.words)


def demote_docs_factor(row: dict[str, Any], shape: QueryShape) -> float:
    """Prose and data files answer code questions less well than the code itself."""
    language = row.get("language") or ""
    if language in DATA_LANGUAGES or (language in DOC_LANGUAGES and not shape.wants_docs):
        return DOCS_FACTOR
    return 1.0


def demote_tests_factor(path: str, shape: QueryShape) -> float:
    """Tests, then auxiliary code (examples, docs, vendored/compat copies, build output,
    dot-folders, stubs), rank below the code they use."""
    if _TEST_PATH.search(path):
        return 1.0 if shape.wants_tests else TESTS_FACTOR
    if _AUX_PATH.search(path) and not shape.wants_docs:
        return AUX_FACTOR
    return 1.0


def path_factor(path: str, shape: QueryShape, rules: frozenset[str]) -> float:
    """The product of the rules that depend on the path alone."""
    factor = 1.0
    if "file_name" in rules:
        factor *= file_name_factor(path, shape)
    if "directory" in rules:
        factor *= directory_factor(path, shape)
    if "demote_tests" in rules:
        factor *= demote_tests_factor(path, shape)
    return factor


def rule_score(
    row: dict[str, Any],
    shape: QueryShape,
    rules: frozenset[str],
    path_factors: dict[str, float] | None = None,
) -> float:
    """A candidate's score after fusion and the per-chunk rules (``path_factors``
    caches :func:`path_factor` across the chunks of one file)."""
    score = fused_score(row, shape)
    path = row.get("path") or ""
    if "definition" in rules:
        score = definition_factor(row, shape, score)
    if path_factors is None:
        score *= path_factor(path, shape, rules)
    else:
        if path not in path_factors:
            path_factors[path] = path_factor(path, shape, rules)
        score *= path_factors[path]
    if "demote_docs" in rules:
        score *= demote_docs_factor(row, shape)
    return score


def by_file(rows: Iterable[dict[str, Any]], rules: frozenset[str]) -> list[dict[str, Any]]:
    """File-level rules over scored rows (``score`` set): coherence lifts a file's best
    chunk by its other matches; decay makes later chunks of one file worth less."""
    files: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        files.setdefault(row["path"], []).append(row)
    out: list[dict[str, Any]] = []
    for chunks in files.values():
        chunks.sort(key=lambda r: (-r["score"], r["start_line"]))
        if "coherence" in rules and len(chunks) > 1:
            chunks[0]["score"] += COHERENCE * sum(r["score"] for r in chunks[1:4])
        if "file_decay" in rules:
            for n, row in enumerate(chunks[1:], start=1):
                row["score"] *= FILE_DECAY**n
        out.extend(chunks)
    return out


def rank(
    vector_hits: Sequence[dict[str, Any]],
    text_hits: Sequence[dict[str, Any]],
    query: str,
    *,
    definitions: Sequence[dict[str, Any]] = (),
    rules: frozenset[str] = frozenset(RULES),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rank the union of both sides' candidates (plus injected ``definitions``, rows
    whose symbol the query names) for ``query``.

    Returns new row dicts (inputs are not modified) sorted by descending ``score``
    (rounded to 6 places), overlapping chunks of one file reduced to the best; at most
    ``limit`` of them when given.
    """
    shape = analyze(query)
    rows = _candidates(vector_hits, text_hits)
    if "definition" in rules:
        for d in definitions:
            if d["id"] not in rows and is_definition_of(d, shape):
                rows[d["id"]] = dict(d)
    path_factors: dict[str, float] = {}
    for row in rows.values():
        row["score"] = rule_score(row, shape, rules, path_factors)
    ranked = by_file(rows.values(), rules)
    for row in ranked:
        row["score"] = round(row["score"], 6)
        row.pop("_v", None)
        row.pop("_l", None)
    ranked.sort(key=lambda r: (-r["score"], r["path"], r["start_line"]))
    return drop_overlaps(ranked, limit)


def match_line(text: str, start_line: int, query: str, window: int = 6) -> int:
    """The first line of the ``window`` lines of a chunk that hold the most query words
    (their stems, found inside the line): what a short snippet should show. ``start_line`` when
    nothing matches or the chunk is no longer than the window."""
    lines = text.split("\n")
    words = analyze(query).words
    if len(lines) <= window or not words:
        return start_line
    # A stem inside the lower-cased line counts (cheap, and splits identifiers for free).
    hits = [sum(1 for w in words if w in line) for line in text.lower().split("\n")]
    best, best_at = sum(hits[:window]), 0
    run = best
    for i in range(1, len(lines) - window + 1):
        run += hits[i + window - 1] - hits[i - 1]
        if run > best:
            best, best_at = run, i
    return start_line + best_at


def drop_overlaps(rows: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """Keep the best of chunks that overlap within one file (they show the same code);
    stop once ``limit`` rows are kept."""
    kept: list[dict[str, Any]] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        if limit is not None and len(kept) >= limit:
            break
        s, e = row["start_line"], row["end_line"]
        taken = spans.setdefault(row["path"], [])
        if any(s <= te and ts <= e for ts, te in taken):
            continue
        taken.append((s, e))
        kept.append(row)
    return kept
