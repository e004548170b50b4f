"""Frozen values passed between pipeline stages. No I/O here.

Paths inside these values are POSIX-style and relative to the indexed root;
line numbers are 1-based and inclusive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


def text_hash(text: str) -> str:
    """Stable content hash of a chunk's text (used to reuse vectors)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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
    # "generated, do not edit" header (rules in discovery.py; the detail names which)
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
    content_hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", text_hash(self.text))


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
