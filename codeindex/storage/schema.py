"""Arrow schemas of the three tables and the derived full-text column."""

from __future__ import annotations

import re

import pyarrow as pa

CHUNKS = "chunks"
FILES = "files"
META = "meta"


def chunks_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("language", pa.string()),
            pa.field("symbol", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("start_line", pa.int32()),
            pa.field("end_line", pa.int32()),
            pa.field("text", pa.string()),
            # text + split identifiers + path/symbol words: what FTS indexes.
            pa.field("search_text", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("priority", pa.int8()),  # 0 source, 1 docs, 2 data/huge: embed order
            pa.field("embed_error", pa.string()),
            # Mirrors "vector IS NOT NULL": filtering on the vector column itself makes
            # LanceDB read every vector (memory growing with the table).
            pa.field("has_vector", pa.bool_()),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=True),
        ]
    )


FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("content_hash", pa.string()),
        pa.field("language", pa.string()),
        pa.field("chunk_count", pa.int32()),
        pa.field("indexed_at", pa.float64()),
        pa.field("skip_reason", pa.string()),
        pa.field("skip_detail", pa.string()),
    ]
)

META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_identifier(word: str) -> list[str]:
    """``parseHTTPRequest_v2`` → ["parse", "HTTP", "Request", "v", "2"]."""
    return _PARTS.findall(word)


def search_text(path: str, symbol: str, text: str) -> str:
    """The full-text column: the code plus the parts of compound identifiers (so
    "validate token" finds ``validateToken`` and ``validate_token``) and the words
    of the path and symbol."""
    extra: dict[str, None] = {}
    for source in (path, symbol, text):
        for ident in _IDENT.findall(source):
            parts = split_identifier(ident)
            if len(parts) > 1:
                for part in parts:
                    extra[part.lower()] = None
    words = re.sub(r"[^A-Za-z0-9]+", " ", f"{path} {symbol}")
    return f"{words}\n{text}\n{' '.join(extra)}"
