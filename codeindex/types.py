"""Values passed between layers: frozen values between the pipeline stages, and
the result types CodeIndex returns to front ends. No I/O here.

Paths inside these values are POSIX-style and relative to the indexed root;
line numbers are 1-based and inclusive.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


def utc_iso(ts: float | None) -> str | None:
    """The one timestamp format of every JSON surface: ISO-8601 UTC to the second,
    ``2024-05-01T12:00:00+00:00``. ``None`` (and 0, "never") stay ``None``."""
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def text_hash(text: str) -> str:
    """Stable content hash of a text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# File names that say nothing of their content: the folder names such a file.
INDEX_FILE_STEMS = frozenset({"index", "mod", "__init__", "init", "main", "lib", "package"})


def file_title(path: str) -> str:
    """The words that name a file: its name (``oauth2.py``), or folder and name for an
    index-like file (``routing/mod.rs``, ``auth/__init__.py``)."""
    parts = path.rsplit("/", 2)
    name = parts[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if stem.lower() in INDEX_FILE_STEMS and len(parts) > 1:
        return f"{parts[-2]}/{name}"
    return name


def embedding_input(path: str, symbol: str, text: str) -> str:
    """What the model embeds for a chunk: a header line naming its file (and symbol)
    above the code. The file's name says what the code is about where the code alone
    does not (``oauth2.py``): on the quality benchmark's vector side alone it was worth
    +0.09 NDCG@10. The folders are left out (they added nothing measurable), so moving
    a file or folder keeps its vectors; renaming the file re-embeds its chunks."""
    title = file_title(path)
    return f"{title} {symbol}\n{text}" if symbol else f"{title}\n{text}"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file discovery accepted for indexing: metadata only, never contents."""

    path: str  # relative POSIX path
    abs_path: Path
    size: int
    mtime_ns: int
    language: str  # "" when unknown (line-window chunking)


class SkipReason:
    """Why discovery or the pipeline did not index a file (values stored as strings)."""

    BINARY = "binary"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    VANISHED = "vanished"
    SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"
    SYMLINK_LOOP = "symlink_loop"
    SPECIAL_FILE = "special_file"
    # machine-written text: lock files, minified bundles, source maps, SVGs, files with a
    # "generated, do not edit" header (rules in discovery/generated.py; the detail names which)
    GENERATED = "generated"
    EMBED_FAILED = "embed_failed"


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that was seen but not indexed, with a reason from SkipReason."""

    path: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One searchable unit of a file."""

    path: str
    start_line: int
    end_line: int
    text: str
    language: str = ""
    symbol: str = ""  # e.g. "Class.method"; "" for line-window chunks
    kind: str = "lines"  # "function", "class", "method", "lines", ...
    # Hash of embedding_input(): equal hashes mean equal vectors (reused, not re-embedded).
    content_hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.content_hash:
            digest = text_hash(embedding_input(self.path, self.symbol, self.text))
            object.__setattr__(self, "content_hash", digest)


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk as the index stores it: its id (unique per path, ordinal and content),
    its embedding priority (0 source, 1 docs, 2 data/huge: embed order) and its vector
    (``None`` until embedded; float32 of the index's dimension)."""

    id: str
    chunk: Chunk
    priority: int
    vector: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One row of the files table: what was indexed (or skipped) and when."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    language: str
    chunk_count: int
    indexed_at: float
    skip_reason: str = ""
    skip_detail: str = ""


# ------------------------------------------------------------------ result types
# What CodeIndex returns to front ends. Each has one ``as_dict()``: the JSON shape
# of the CLI's --json output and of the MCP tools' results.


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: a chunk's range and text; ``match_line`` is where the
    query's words are densest in it (a short snippet starts there)."""

    path: str
    start_line: int
    end_line: int
    score: float
    symbol: str
    language: str
    snippet: str
    match_line: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": self.score,
            "symbol": self.symbol,
            "language": self.language,
            "snippet": self.snippet,
            "match_line": self.match_line,
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results; ``next_cursor`` is None on the last page and
    ``coverage`` the share of chunks with vectors.

    ``semantic`` says whether the vector side ran (the query was embedded and searched).
    It is not part of ``as_dict()``: the CLI's JSON shape predates it, and the MCP tool
    adds it under its own key."""

    query: str
    results: tuple[SearchHit, ...]
    next_cursor: str | None
    coverage: float
    semantic: bool = False

    @classmethod
    def empty(cls, query: str) -> SearchPage:
        """ "No results yet": the page of an index that is still being built."""
        return cls(query=query.strip(), results=(), next_cursor=None, coverage=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "results": [h.as_dict() for h in self.results],
            "next_cursor": self.next_cursor,
            "coverage": self.coverage,
        }


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a file page: an indexed file (language, size, chunks, when), or
    with ``skipped`` a file that was not indexed and why (reason, detail)."""

    path: str
    language: str = ""
    size: int = 0
    chunks: int = 0
    indexed_at: str | None = None  # utc_iso
    skipped: bool = False
    reason: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.skipped:
            return {"path": self.path, "reason": self.reason, "detail": self.detail}
        return {
            "path": self.path,
            "language": self.language,
            "size": self.size,
            "chunks": self.chunks,
            "indexed_at": self.indexed_at,
        }


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page of files. ``total`` is None when ``index_changed`` (the index has
    moved on since the cursor's snapshot)."""

    files: tuple[FileEntry, ...]
    next_cursor: str | None
    total: int | None
    index_changed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.as_dict() for f in self.files],
            "next_cursor": self.next_cursor,
            "total": self.total,
            "index_changed": self.index_changed,
        }


# ------------------------------------------------------ index runs and status
class Progress(Protocol):
    """What a front end implements to follow an index run (passed to
    ``CodeIndex.index(progress=...)``). Called from the run's thread, so every method
    must be cheap and must not block."""

    def phase(self, name: str, total: int | None) -> None:
        """A phase ("scanning", "embedding") starts; ``total`` items, None if unknown."""
        ...

    def advance(self, n: int = 1, **info: Any) -> None:
        """``n`` more items of the current phase are done."""
        ...


class NullProgress:
    """A Progress that shows nothing (the run's default)."""

    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, **info: Any) -> None:
        pass


@dataclass
class IndexReport:
    """The outcome of one index/update run (the CLI's --json report).

    Not frozen: the pipeline counts into it while the run goes on; once
    ``CodeIndex.index()`` has returned it, nothing changes it any more."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    ingest_seconds: float = 0.0  # reading, chunking and writing, before upkeep/embedding
    peak_rss_bytes: int = 0
    interrupted: bool = False
    smallest_batch_size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": dict(sorted(self.skipped.items())),
            "failed": self.failed,
            "chunks_written": self.chunks_written,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "seconds": round(self.seconds, 3),
            "ingest_seconds": round(self.ingest_seconds, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "interrupted": self.interrupted,
        }

    @property
    def changed(self) -> bool:
        """Whether the run changed what search can find."""
        return bool(self.added or self.updated or self.deleted or self.chunks_embedded)


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a running index run is (the ``run`` entry of a status): its phase, items
    done of ``total`` (None: unknown), rate and ETA (None: unknown yet)."""

    phase: str
    done: int
    total: int | None
    rate_per_s: float
    eta_seconds: float | None
    started_at: str | None  # utc_iso

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "rate_per_s": self.rate_per_s,
            "eta_seconds": self.eta_seconds,
            "started_at": self.started_at,
        }


class IndexState(enum.StrEnum):
    """What a status says of the index, checked in this order."""

    MISSING = "missing"  # no index has been built yet
    INCOMPATIBLE = "incompatible"  # built with another model/options: needs a rebuild
    INDEXING = "indexing"  # a writer (this or another process) holds the writer lock
    STALE = "stale"  # last run interrupted, vectors missing, or files changed since
    READY = "ready"  # complete and (as far as checked) up to date


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """An index's state, counts, coverage, model, disk use and telemetry.

    ``memory`` is the memory probe's snapshot and ``watcher`` the watcher's state
    (free-form: they describe the process, not the index). ``run`` is set while
    this process runs an index; ``embed_failed`` is None when there is no index
    (and then left out of the JSON)."""

    root: str
    index_dir: str
    state: IndexState
    model: str
    memory: dict[str, Any]
    watcher: dict[str, Any]
    dimension: int | None = None
    files: int = 0
    chunks: int = 0
    chunks_with_vectors: int = 0
    coverage: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    disk_bytes: int = 0
    last_indexed_at: str | None = None  # utc_iso
    incompatible_reason: str | None = None
    run: RunProgress | None = None
    embed_failed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "root": self.root,
            "index_dir": self.index_dir,
            "state": self.state.value,
            "model": self.model,
            "dimension": self.dimension,
            "files": self.files,
            "chunks": self.chunks,
            "chunks_with_vectors": self.chunks_with_vectors,
            "coverage": self.coverage,
            "skipped": dict(self.skipped),
            "disk_bytes": self.disk_bytes,
            "last_indexed_at": self.last_indexed_at,
            "incompatible_reason": self.incompatible_reason,
            "memory": self.memory,
        }
        if self.run is not None:
            out["run"] = self.run.as_dict()
        out["watcher"] = self.watcher
        if self.embed_failed is not None:
            out["embed_failed"] = self.embed_failed
        return out
