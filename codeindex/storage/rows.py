"""The only code that turns domain values into Arrow rows and Arrow rows back into
domain values: chunks (:class:`ChunkRow`) ⇄ the chunks table, :class:`FileRecord` ⇄
the files table, meta values, stored vectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from codeindex.storage.schema import FILES_SCHEMA, META_SCHEMA, chunks_schema, search_text
from codeindex.types import Chunk, ChunkRow, FileRecord

# Chunk columns returned by searches and listings (never the vector unless asked).
HIT_COLUMNS = ["id", "path", "language", "symbol", "kind", "start_line", "end_line", "text"]
# What a chunk row is rebuilt from (see :func:`chunk_rows`).
CHUNK_COLUMNS = [*HIT_COLUMNS, "content_hash", "priority"]


def hit_columns(with_text: bool) -> list[str]:
    return HIT_COLUMNS if with_text else [c for c in HIT_COLUMNS if c != "text"]


def chunk_table(
    rows: Sequence[ChunkRow], dimension: int, vectors: np.ndarray | None = None
) -> pa.Table:
    """``rows`` as chunks-table rows: the full-text column derived, ``has_vector``
    mirroring the vector. ``vectors`` (one per row, in order) replaces the rows' own."""
    chunks = [r.chunk for r in rows]
    vec_type = pa.list_(pa.float32(), dimension)
    if vectors is not None:
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        vector = pa.FixedSizeListArray.from_arrays(flat, type=vec_type)
        has_vector = [True] * len(rows)
    else:
        vector = pa.array([None if r.vector is None else r.vector.tolist() for r in rows], vec_type)
        has_vector = [r.vector is not None for r in rows]
    return pa.table(
        {
            "id": [r.id for r in rows],
            "path": [c.path for c in chunks],
            "language": [c.language for c in chunks],
            "symbol": [c.symbol for c in chunks],
            "kind": [c.kind for c in chunks],
            "start_line": [c.start_line for c in chunks],
            "end_line": [c.end_line for c in chunks],
            "text": [c.text for c in chunks],
            "search_text": [search_text(c.path, c.symbol, c.text) for c in chunks],
            "content_hash": [c.content_hash for c in chunks],
            "priority": pa.array([r.priority for r in rows], pa.int8()),
            "embed_error": [""] * len(rows),
            "vector": vector,
            "has_vector": pa.array(has_vector, pa.bool_()),
        },
        schema=chunks_schema(dimension),
    )


def chunk_rows(table: pa.Table) -> list[ChunkRow]:
    """Rows read with :data:`CHUNK_COLUMNS` as chunk rows (without their vectors)."""
    return [
        ChunkRow(
            id=r["id"],
            chunk=Chunk(
                path=r["path"],
                start_line=int(r["start_line"]),
                end_line=int(r["end_line"]),
                text=r["text"] or "",
                language=r["language"] or "",
                symbol=r["symbol"] or "",
                kind=r["kind"] or "",
                content_hash=r["content_hash"],
            ),
            priority=int(r["priority"] or 0),
        )
        for r in table.to_pylist()
    ]


def file_table(records: Sequence[FileRecord]) -> pa.Table:
    """Records as files-table rows (its columns are the record's fields)."""
    return pa.table(
        {name: [getattr(r, name) for r in records] for name in FILES_SCHEMA.names},
        schema=FILES_SCHEMA,
    )


def file_record(r: Mapping[str, Any]) -> FileRecord:
    """A files-table row (as a dict) as a record."""
    return FileRecord(
        path=r["path"],
        size=int(r["size"] or 0),
        mtime_ns=int(r["mtime_ns"] or 0),
        content_hash=r["content_hash"] or "",
        language=r["language"] or "",
        chunk_count=int(r["chunk_count"] or 0),
        indexed_at=float(r["indexed_at"] or 0.0),
        skip_reason=r["skip_reason"] or "",
        skip_detail=r["skip_detail"] or "",
    )


def meta_table(values: Mapping[str, object]) -> pa.Table:
    return pa.table(
        {"key": list(values), "value": [str(v) for v in values.values()]}, schema=META_SCHEMA
    )


def vectors(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    """A vector column as one float32 array of shape (rows, dim)."""
    arr = column.combine_chunks()
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(
        -1, dim
    )
