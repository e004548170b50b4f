"""The LanceDB-backed index: chunks, files and meta tables.

Contracts:
* Every read is bounded: callers pass a limit (and offset or key list); nothing
  materialises a whole table.
* Writes are batched by the caller; ``replace_files`` swaps a batch of files'
  chunks in ONE commit (merge_insert with delete-by-source), so a reader never sees a
  file half-replaced and a killed run never leaves duplicates.
* Old versions are removed by ``optimize`` after ``retention`` so disk does not grow
  without bound; readers that opened with a consistency interval keep working.

Why one module of ~600 lines: it is the one ``Store`` class, the domain API over the
three tables, and every method is a few lines of LanceDB calls; the Arrow row code
(``rows.py``), the SQL (``filters.py``), schemas, cursors and index upkeep
(``maintenance.py``) already live beside it. Splitting the class would split the
write path's ordering (chunks before files, one commit per swap) across files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import BTree

from codeindex.errors import BadCursorError, CodeIndexError
from codeindex.memory import trim
from codeindex.storage import filters, maintenance, rows
from codeindex.storage.cursor import load_key
from codeindex.storage.filters import (
    EMBED_FAILED,
    HAS_VECTOR,
    PENDING,
    SKIPPED,
    Filter,
    sql_in,
    where_of,
)
from codeindex.storage.rows import CHUNK_COLUMNS, HIT_COLUMNS, file_record, hit_columns
from codeindex.storage.schema import CHUNKS, FILES, FILES_SCHEMA, META, META_SCHEMA, chunks_schema
from codeindex.types import ChunkRow, FileRecord

log = logging.getLogger(__name__)

_IN_BATCH = 500  # max keys per IN (...) filter
_INDEX_CACHE_BYTES = 64 * 1024 * 1024
_METADATA_CACHE_BYTES = 32 * 1024 * 1024
FTS_INDEX = "search_text_idx"
_SCALAR_COLUMNS = ("id", "path", "content_hash")  # id: merge_insert joins use it


def _latest_on_vanished(table_name: str):
    """Retry a read once on the table's latest version when the version it read has had
    its files removed meanwhile.

    A handle keeps reading the version it last saw until its consistency interval
    passes; a writer in the same process or another one may clean that version's files
    up first (``optimize`` with a short ``version_retention_seconds``), and Lance then
    fails with "Not found". The newest version is complete, so the read is redone there.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def run(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except (RuntimeError, OSError, ValueError) as exc:
                if "Not found" not in str(exc):
                    raise
                log.info("%s: read a removed version; retrying on the latest", table_name)
                getattr(self, table_name).checkout_latest()
                return fn(self, *args, **kwargs)

        return run

    return wrap


def index_exists(index_dir: Path) -> bool:
    """True when ``index_dir`` holds a codeindex (its meta table exists)."""
    return (Path(index_dir) / f"{META}.lance").is_dir()


class Store:
    """One open index. Thread-safe for concurrent readers; one writer at a time
    (the service holds the writer lock)."""

    def __init__(
        self,
        index_dir: Path,
        dimension: int,
        *,
        create: bool = False,
        consistency_seconds: float | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.dimension = dimension
        if create:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            gi = self.index_dir / ".gitignore"
            if not gi.exists():
                gi.write_text("# codeindex data: never commit\n*\n")
        elif not index_exists(self.index_dir):
            raise CodeIndexError(f"no index at {self.index_dir}; run `codeindex index` first.")
        self._interval = (
            None if consistency_seconds is None else timedelta(seconds=consistency_seconds)
        )
        self._connect()
        self._lock = threading.Lock()
        self.writes = 0  # commits made through this Store (callers skip no-op compaction)
        existing = set(self._list_tables())
        if create:
            if META not in existing:
                self.db.create_table(META, schema=META_SCHEMA)
            if FILES not in existing:
                self.db.create_table(FILES, schema=FILES_SCHEMA)
            if CHUNKS not in existing:
                self.db.create_table(CHUNKS, schema=chunks_schema(dimension))
        self._open_tables()
        self.opened_version = self.chunks.version
        vec_type = self.chunks.schema.field("vector").type
        stored_dim = getattr(vec_type, "list_size", dimension)
        if stored_dim != dimension:
            # The service turns a mismatch into an "incompatible" state; keep the
            # stored dimension so reads still work.
            self.dimension = stored_dim

    def _connect(self) -> None:
        # LanceDB's default caches grow to gigabytes over many versions; bound them.
        self.session = lancedb.Session(
            index_cache_size_bytes=_INDEX_CACHE_BYTES,
            metadata_cache_size_bytes=_METADATA_CACHE_BYTES,
        )
        self.db = lancedb.connect(
            str(self.index_dir), read_consistency_interval=self._interval, session=self.session
        )

    def _open_tables(self) -> None:
        self.meta = self.db.open_table(META)
        self.files = self.db.open_table(FILES)
        self.chunks = self.db.open_table(CHUNKS)

    def drop_caches(self) -> None:
        """Start a fresh LanceDB session: what the old one cached is freed once no
        reader holds its tables (a reader in another thread keeps a working handle).
        The caches fill to their bounds on a big table (about 95 MiB at 400,000 chunks)
        and upkeep does not use them, so :meth:`optimize` starts with this."""
        self._connect()
        self._open_tables()
        trim()

    @functools.cached_property
    def cursor_key(self) -> bytes:
        """This index's key for signing page cursors (``cursor.key`` in the index
        directory, created on first use): read once per Store. Two threads racing
        here both load the same key (see :func:`load_key`), so no lock is needed."""
        return load_key(self.index_dir)

    def _list_tables(self) -> list[str]:
        res = self.db.list_tables()
        return list(getattr(res, "tables", res))

    # ------------------------------------------------------------------ meta
    def meta_version(self) -> int:
        """The meta table's version: it changes whenever meta is written."""
        return self.meta.version

    @_latest_on_vanished("meta")
    def read_meta(self) -> dict[str, str]:
        page = self.meta.search().select(["key", "value"]).limit(1000).to_list()
        return {r["key"]: r["value"] for r in page}

    def write_meta(self, values: dict[str, str]) -> None:
        self.writes += 1
        self.meta.merge_insert(
            "key"
        ).when_matched_update_all().when_not_matched_insert_all().execute(rows.meta_table(values))

    # ----------------------------------------------------------------- files
    def get_files(self, paths: Sequence[str]) -> dict[str, FileRecord]:
        """File records for ``paths`` (missing ones are absent), at the latest version."""
        return _lookup_files(self.files, paths)

    def file_snapshot(self) -> FileSnapshot:
        """Lookups of file records as they are now, for one run.

        A run looks up every path it discovers once, and only its own writes change
        the table meanwhile, so the version at its start answers every lookup. Pinning
        it keeps each lookup to what the last compaction indexed: against the latest
        version every lookup also scanned the fragments this run appended, so a first
        run of 200,000 files spent two thirds of its ingest in lookups and its RSS
        grew by 200 MiB."""
        if self.files.count_rows() == 0:
            return FileSnapshot(None)
        table = self.db.open_table(FILES)
        table.checkout(self.files.version)
        return FileSnapshot(table)

    def add_files(self, records: Sequence[FileRecord]) -> None:
        """Append records of files the table does not hold yet (no lookup, no join)."""
        if records:
            self.writes += 1
            self.files.add(rows.file_table(records))

    def upsert_files(self, records: Sequence[FileRecord]) -> None:
        self.writes += 1
        if not records:
            return
        self.files.merge_insert(
            "path"
        ).when_matched_update_all().when_not_matched_insert_all().execute(rows.file_table(records))

    def iter_file_paths(self, page_size: int = 5000) -> Iterator[str]:
        """Every path in the files table, paged (pinned to one table version)."""
        table = self.db.open_table(FILES)
        offset = 0
        while True:
            page = table.search().select(["path"]).limit(page_size).offset(offset).to_arrow()
            if page.num_rows == 0:
                return
            yield from page.column("path").to_pylist()
            offset += page.num_rows

    def versions_since_open(self) -> int:
        """How many chunk-table versions were committed since this Store opened."""
        return self.chunks.version - self.opened_version

    def files_version(self) -> int:
        return self.files.version

    def page_files(
        self, where: Filter | None, offset: int, limit: int, version: int | None
    ) -> tuple[list[FileRecord], int]:
        """One page of file records at table ``version`` (None: latest).

        Returns (records, version). Raises BadCursorError when that version has
        been cleaned up.
        """
        table = self.db.open_table(FILES)
        if version is not None and version != table.version:
            try:
                table.checkout(version)
            except Exception:  # lance raises several types for a missing version
                raise BadCursorError(
                    "the index changed since this cursor was issued and that snapshot is "
                    "gone; list again without a cursor"
                ) from None
        q = table.search()
        if clause := where_of(where):
            q = q.where(clause)
        found = q.limit(limit).offset(offset).to_list()
        return [file_record(r) for r in found], table.version

    def count_files(self, where: Filter | None = None) -> int:
        """Files (indexed and skipped) matching ``where``."""
        return _count(self.files, where_of(where))

    def count_indexed_files(self) -> int:
        """Files indexed, not skipped."""
        return self.count_files(Filter(skipped=False))

    def skip_counts(self) -> dict[str, int]:
        """Skipped-file counts by reason (paged scan of one short column)."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = (
                self.files.search()
                .where(SKIPPED)
                .select(["skip_reason"])
                .limit(5000)
                .offset(offset)
                .to_arrow()
            )
            if page.num_rows == 0:
                return counts
            for reason in page.column("skip_reason").to_pylist():
                counts[reason] = counts.get(reason, 0) + 1
            offset += page.num_rows

    # ---------------------------------------------------------------- chunks
    def vectors_for_hashes(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by content hash, for reuse instead of re-embedding."""
        out: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(hashes))
        for i in range(0, len(uniq), _IN_BATCH):
            part = uniq[i : i + _IN_BATCH]
            where = filters.embedded_with_hash(part)
            tbl = (
                self.chunks.search()
                .where(where)
                .select(["content_hash", "vector"])
                .limit(len(part) * 4 + 16)
                .to_arrow()
            )
            if tbl.num_rows == 0:
                continue
            vecs = rows.vectors(tbl.column("vector"), self.dimension)
            for h, v in zip(tbl.column("content_hash").to_pylist(), vecs, strict=True):
                out.setdefault(h, v)
        return out

    def replace_files(self, paths: Sequence[str], chunks: Sequence[ChunkRow]) -> None:
        """Atomically make ``chunks`` the only chunks of ``paths`` (one commit)."""
        self.writes += 1
        if not paths:
            return
        if not chunks:
            self.chunks.delete(sql_in("path", list(paths)))
            return
        (
            self.chunks.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(sql_in("path", list(paths)))
            .execute(rows.chunk_table(chunks, self.dimension), on_bad_vectors="null")
        )

    def add_chunks(self, chunks: Sequence[ChunkRow]) -> None:
        """Append chunks in one commit.

        Handed over as a stream of record batches, which LanceDB writes as they come:
        a table goes through its vector checks first, which copy it (measured, peak
        RSS during a 512-row append: +4.2 MiB as a table, +2.7 MiB as a stream).
        Vectors are None or of the table's dimension."""
        self.writes += 1
        if chunks:
            table = rows.chunk_table(chunks, self.dimension)
            self.chunks.add(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))

    def replace_streamed(self, path: str, batches: Iterable[Sequence[ChunkRow]]) -> None:
        """Replace the chunks of ``path`` (a big file) with ``batches``, appended batch by
        batch as they are yielded, in ONE commit (see :func:`maintenance.append_stream`):
        memory stays at one batch. The old rows stay until that commit, so each batch
        can still reuse their vectors; a second commit then deletes them (readers in
        between see both, briefly). Ending ``batches`` early commits what they gave.

        An exception raised by ``batches`` propagates as itself; nothing is committed
        and the old rows stay, and Lance removes the data files it had written (a kill
        leaves them to the next start's cleanup)."""
        self.writes += 1
        raised: list[BaseException] = []

        def pulled() -> Iterator[pa.RecordBatch]:
            try:
                for batch in batches:
                    yield from rows.chunk_table(batch, self.dimension).to_batches()
            except GeneratorExit:
                raise  # Lance stopped pulling: its own error, if any, is the one to see
            except BaseException as exc:
                raised.append(exc)  # Lance reports it as a generic OSError
                raise

        schema = chunks_schema(self.dimension)
        try:
            first_new = maintenance.append_stream(
                self.index_dir / f"{CHUNKS}.lance",
                pa.RecordBatchReader.from_batches(schema, pulled()),
            )
        except BaseException:
            if raised:
                raise raised[0] from None
            raise
        finally:
            self.chunks.checkout_latest()  # committed outside this handle
        if first_new:  # else the table was empty: no old rows to scan for
            self.chunks.delete(filters.older_rows_of(path, first_new))

    def delete_paths(self, paths: Sequence[str]) -> None:
        """Remove files and their chunks: two commits per 500 paths (chunks, files),
        so callers hand over every path of a batch at once."""
        self.writes += 1
        for i in range(0, len(paths), _IN_BATCH):
            part = list(paths[i : i + _IN_BATCH])
            self.chunks.delete(sql_in("path", part))
            self.files.delete(sql_in("path", part))

    def delete_chunks_of(self, paths: Sequence[str]) -> None:
        self.writes += 1
        for i in range(0, len(paths), _IN_BATCH):
            self.chunks.delete(sql_in("path", list(paths[i : i + _IN_BATCH])))

    def pending_chunks(self, limit: int, priority: int) -> list[ChunkRow]:
        """Up to ``limit`` chunks of ``priority`` without a vector (and no recorded
        embed error), whole, so that :meth:`set_vectors` can write whole rows."""
        q = self.chunks.search().where(filters.pending(priority)).select(CHUNK_COLUMNS)
        return rows.chunk_rows(q.limit(limit).to_arrow())

    def set_vectors(self, chunks: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one per chunk, in order) for ``chunks`` from
        :meth:`pending_chunks`, in one commit.

        Whole rows are rewritten on purpose: a merge_insert of only ``id`` and
        ``vector`` rewrites the vector column of every fragment it touches, so each
        page of 256 vectors cost disk and memory in proportion to the table (measured:
        445 MB written for 10 pages of a 40,000-row table, against 4 MB for whole rows).
        """
        self.writes += 1
        if not chunks:
            return
        data = rows.chunk_table(chunks, self.dimension, vectors)
        self.chunks.merge_insert("id").when_matched_update_all().execute(data)

    def mark_embed_failed(self, ids: Sequence[str], reason: str) -> None:
        self.writes += 1
        if ids:
            self.chunks.update(where=sql_in("id", list(ids)), values={"embed_error": reason})

    def count_with_vectors(self) -> int:
        return self.chunks.count_rows(HAS_VECTOR)

    def count_pending(self) -> int:
        """Chunks still waiting for a vector (embed failures excluded)."""
        return self.chunks.count_rows(PENDING)

    def count_embed_failed(self) -> int:
        """Chunks the model could not embed (recorded, not retried)."""
        return self.chunks.count_rows(EMBED_FAILED)

    def count_chunks(self, where: Filter | None = None) -> int:
        """Chunks matching ``where``."""
        return _count(self.chunks, where_of(where))

    def chunks_of(self, path: str, limit: int = 10_000) -> list[dict[str, Any]]:
        return (
            self.chunks.search()
            .where(where_of(Filter(path=path)))
            .select(HIT_COLUMNS)
            .limit(limit)
            .to_list()
        )

    def chunk_vector_at(self, path: str, start: int, end: int) -> np.ndarray | None:
        """Mean of the stored vectors of chunks overlapping [start, end] of ``path``."""
        where = filters.overlapping(path, start, end)
        tbl = self.chunks.search().where(where).select(["vector"]).limit(1000).to_arrow()
        if tbl.num_rows == 0:
            return None
        vec = rows.vectors(tbl.column("vector"), self.dimension).mean(axis=0)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else None

    def iter_chunk_hashes(self, page_size: int = 5000) -> Iterator[tuple[str, str]]:
        """(path, content_hash) of every chunk, paged."""
        table = self.db.open_table(CHUNKS)
        offset = 0
        while True:
            page = (
                table.search()
                .select(["path", "content_hash"])
                .limit(page_size)
                .offset(offset)
                .to_arrow()
            )
            if page.num_rows == 0:
                return
            yield from zip(
                page.column("path").to_pylist(),
                page.column("content_hash").to_pylist(),
                strict=True,
            )
            offset += page.num_rows

    # ---------------------------------------------------------------- search
    @_latest_on_vanished("chunks")
    def vector_search(
        self,
        vector: np.ndarray,
        limit: int,
        where: Filter | None = None,
        *,
        with_text: bool = True,
        all_embedded: bool = False,
    ) -> list[dict]:
        """Nearest chunks by cosine distance (``_distance``). ``with_text=False`` leaves
        the text out (ranking reads many candidates but shows few: see
        :meth:`chunk_texts`); ``all_embedded`` (every chunk has a vector) skips the
        has-vector prefilter, which costs a pass over that column."""
        clause = filters.and_where(None if all_embedded else HAS_VECTOR, where)
        q = self.chunks.search(
            np.asarray(vector, dtype=np.float32), vector_column_name="vector"
        ).distance_type("cosine")
        if clause:
            q = q.where(clause, prefilter=True)
        return q.select([*hit_columns(with_text), "_distance"]).limit(limit).to_list()

    @_latest_on_vanished("chunks")
    def text_search(
        self, query: str, limit: int, where: Filter | None = None, *, with_text: bool = True
    ) -> list[dict]:
        """Best chunks by BM25 over the full-text column (``_score``)."""
        if not query.strip():
            return []
        q = self.chunks.search(query, query_type="fts", fts_columns="search_text")
        if clause := where_of(where):
            q = q.where(clause, prefilter=True)
        try:
            return q.select([*hit_columns(with_text), "_score"]).limit(limit).to_list()
        except (ValueError, RuntimeError, OSError) as exc:
            message = str(exc).lower()
            # "not found": a removed version (retried on the latest, above), whose path
            # names the .codeindex directory and so contains "index" too.
            if "index" in message and "not found" not in message:
                return []  # no FTS index yet (empty table): vector side still answers
            raise

    @_latest_on_vanished("chunks")
    def chunk_texts(self, ids: Sequence[str]) -> dict[str, str]:
        """The text of each chunk id that still exists (one indexed lookup)."""
        ids = list(dict.fromkeys(ids))[:_IN_BATCH]
        if not ids:
            return {}
        page = self.chunks.search().where(sql_in("id", ids)).select(["id", "text"])
        return {r["id"]: r["text"] for r in page.limit(len(ids)).to_list()}

    @_latest_on_vanished("chunks")
    def definitions(
        self,
        names: Sequence[str],
        limit: int,
        where: Filter | None = None,
        *,
        with_text: bool = True,
    ) -> list[dict]:
        """Chunks whose symbol is one of ``names`` or ends with ``.name`` (any case):
        the definitions a query names, for ranking to inject. A scan of the symbol
        column, bounded by ``limit``."""
        names = [n.lower() for n in names if n][:8]
        if not names:
            return []
        clause = filters.and_where(filters.symbol_matches(names), where)
        q = self.chunks.search().where(clause).select(hit_columns(with_text))
        return q.limit(limit).to_list()

    # ---------------------------------------------------------- maintenance
    def ensure_indexes(self) -> None:
        """Create the scalar indexes once the table has rows (the full-text index is
        built by :meth:`optimize`, in bounded segments)."""
        if self.chunks.count_rows() == 0:
            return
        names = {ix.name for ix in self.chunks.list_indices()}
        for col in _SCALAR_COLUMNS:
            if f"{col}_idx" not in names:
                self.chunks.create_index(col, config=BTree(), name=f"{col}_idx")
        if self.files.count_rows() and "path_idx" not in {
            ix.name for ix in self.files.list_indices()
        }:
            self.files.create_index("path", config=BTree(), name="path_idx")

    def optimize(
        self, retention_seconds: float, delete_unverified: bool = False, *, rebuild: bool = True
    ) -> None:
        """Compact fragments, fold new rows into the indexes, drop old versions.

        ``rebuild=False`` never rebuilds the full-text index (mid-run calls: a run
        that is still rewriting rows would only make more of it dead again).

        Memory is bounded by the change, not the table (see
        :mod:`codeindex.storage.maintenance`); a full-text index with too many segments
        or too much of it dead is rebuilt, group by group.
        ``delete_unverified`` also removes data files no version references (what a
        killed writer leaves behind); only safe under the writer lock."""
        table_dir = self.index_dir / f"{CHUNKS}.lance"
        self.drop_caches()  # upkeep peaks above the steady state: make room first
        if self.chunks.count_rows():
            # Compact first: the new rows' fragments are not indexed yet, so merging
            # them remaps no index.
            maintenance.compact(table_dir)
            self.chunks.checkout_latest()  # committed outside this handle
            self.ensure_indexes()
        shape = maintenance.update_indexes(
            table_dir,
            fts_index=FTS_INDEX,
            fts_column="search_text",
            scalar_indexes=[f"{col}_idx" for col in _SCALAR_COLUMNS],
            retention_seconds=retention_seconds,
            delete_unverified=delete_unverified,
        )
        if rebuild and shape.needs_rebuild():
            log.info("rebuilding the full-text index (%s)", shape)
            maintenance.index_fts(table_dir, FTS_INDEX, "search_text", rebuild=True)
            maintenance.cleanup(table_dir, FTS_INDEX, retention_seconds, delete_unverified)
        self.chunks.checkout_latest()
        keep = timedelta(seconds=max(0.0, retention_seconds))
        with warnings.catch_warnings():
            # Retention 0 is a deliberate setting (tests, single-process use).
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            for table in (self.files, self.meta):  # small tables, no full-text index
                table.optimize(cleanup_older_than=keep, delete_unverified=delete_unverified)
        trim()  # compaction frees a lot; hand it back to the OS

    def optimize_meta(self, retention_seconds: float) -> None:
        """Compact the tiny meta table (written on every run) so its versions stay few."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")
            self.meta.optimize(cleanup_older_than=timedelta(seconds=max(0.0, retention_seconds)))

    def disk_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.index_dir):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def version_count(self) -> int:
        return len(self.chunks.list_versions())


class FileSnapshot:
    """File records at one version of the files table (see :meth:`Store.file_snapshot`)."""

    def __init__(self, table: Any | None) -> None:
        self._table = table  # None: the table was empty, every lookup misses

    def get(self, paths: Sequence[str]) -> dict[str, FileRecord]:
        """Records for ``paths`` at the pinned version (missing ones are absent)."""
        return {} if self._table is None else _lookup_files(self._table, paths)


def _lookup_files(table: Any, paths: Sequence[str]) -> dict[str, FileRecord]:
    out: dict[str, FileRecord] = {}
    for i in range(0, len(paths), _IN_BATCH):
        part = list(paths[i : i + _IN_BATCH])
        found = table.search().where(sql_in("path", part)).limit(len(part) + 1).to_list()
        for r in found:
            out[r["path"]] = file_record(r)
    return out


def _count(table: Any, where: str | None) -> int:
    return table.count_rows(where) if where else table.count_rows()
