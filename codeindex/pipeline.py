"""walk → diff → read/chunk → write (searchable by full text) → embed (vectors fill in).

Bounded at every step: discovery streams metadata; a producer thread reads and
chunks files into a queue of fixed size; the writer flushes at most
``write_batch_rows`` chunks per commit; big files are streamed in buffer-sized
pieces; embedding pages through pending chunks. Peak memory is the model + one
embedding page + one write buffer + the queue, whatever the size of the tree.

Crash safety: a file's row in the files table is written only after its chunks
(and, for small files, in the same flush, after one atomic chunk swap), so a killed
run leaves every file either fully old, fully new, or marked incomplete; the next
run redoes exactly those and embeds whatever still lacks a vector.

Why one module of ~600 lines: the crash-safety order above (chunks, then the file row,
then vectors) is one sequence over shared run state (the write buffer, the reader
queue, the report); the stages it drives (discovery, chunking, embedding, storage) and
its values (``types``) already live in their own modules.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from codeindex import chunking, discovery
from codeindex.config import Settings
from codeindex.embedding import Embedder, EmbedError
from codeindex.languages import DATA_LANGUAGES
from codeindex.memory import Governor, Pressure, peak_rss_bytes, release_caches, trim
from codeindex.reading import open_binary
from codeindex.storage import FileSnapshot, Store
from codeindex.types import (
    Chunk,
    ChunkRow,
    FileRecord,
    IndexReport,
    NullProgress,
    Progress,
    Skipped,
    SkipReason,
    SourceFile,
    embedding_input,
)

log = logging.getLogger(__name__)

_LOOKUP_BATCH = 256  # files looked up in the files table per query
_QUEUE_ITEMS = 64  # files in flight between the reader thread and the writer
_EMBED_PAGE = 256  # pending chunks fetched per embedding step
_OPTIMIZE_EVERY_PAGES = 40  # compact while embedding so versions/fragments stay bounded
_FAILED_READ = (SkipReason.UNREADABLE,)


def file_priority(language: str, size: int, settings: Settings) -> int:
    """Embedding order: 0 source code, 1 docs/unknown, 2 data and huge files."""
    if size > settings.stream_threshold_bytes or language in DATA_LANGUAGES:
        return 2
    if language in ("", "markdown", "rst"):
        return 1
    return 0


def _chunk_id(path: str, ordinal: int, content_hash: str) -> str:
    key = f"{path}\0{ordinal}\0{content_hash}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def _path_key(path: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


class _HashingReader:
    """Wraps a binary stream, hashing every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = hashlib.blake2b(digest_size=16)

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        return data

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


# Items on the reader → writer queue.
@dataclass
class _Parsed:
    record: FileRecord
    chunks: list[Chunk]
    is_new: bool


@dataclass
class _Stream:
    source: SourceFile
    is_new: bool


@dataclass
class _Skip:
    skipped: Skipped
    size: int = 0
    mtime_ns: int = 0


@dataclass
class _Touch:  # content unchanged, only metadata (mtime) differs
    record: FileRecord


@dataclass
class _Streamed:  # progress of one streamed file
    count: int = 0
    digest: str | None = None  # set once the whole file was read


_DONE = object()


class Pipeline:
    """One index/update run over a root. Not reusable: make one per run."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        governor: Governor | None = None,
        clean_start: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.progress = progress or NullProgress()
        self.stop = stop or threading.Event()
        self.governor = (
            governor
            or getattr(embedder, "governor", None)
            or Governor(settings.memory_limit_mb, settings.max_batch_size)
        )
        self.report = IndexReport()
        # After a clean previous run, a file without a record has no chunk rows, so
        # its chunks can be appended; after a killed run they go through the atomic
        # swap, which also removes orphans the killed run left.
        self.clean_start = clean_start
        self._reuse = True
        self._writes = 0  # write batches so far (every 16th trims the heap)
        self._abort = threading.Event()  # writer failed: the reader must stop too
        self._seen = array.array("Q")
        self._known = FileSnapshot(None)  # set by _ingest
        # Directories discovery could not list: files indexed under them are kept.
        self._protected_prefixes: list[str] = []
        self._dim = embedder.dimension
        self._count_tokens: Callable[[str], int] = embedder.count_tokens
        # write buffer
        self._buf_records: list[FileRecord] = []
        self._buf_chunks: list[tuple[Chunk, int]] = []  # (chunk, priority)
        self._buf_paths: list[str] = []  # files whose chunks are swapped atomically
        self._buf_new: list[tuple[Chunk, int]] = []  # chunks of new files: appended
        self._buf_new_records: list[FileRecord] = []  # their records: appended too
        self._buf_gone: list[str] = []  # files to remove: deleted together, last

    # ------------------------------------------------------------ entry
    def run(
        self, paths: Iterable[str] | None = None, embed: bool = True, compact: bool = True
    ) -> IndexReport:
        """Index the whole root (paths=None) or just ``paths`` (relative), then embed.
        ``compact=False``: no optimize() after writing (the caller compacts later)."""
        t0 = time.perf_counter()
        writes_before = self.store.writes
        # Nothing to reuse from an index without vectors (first run): skip the lookups.
        self._reuse = self.store.count_with_vectors() > 0
        try:
            self._ingest(paths)
            self.report.ingest_seconds = time.perf_counter() - t0
            if not self.stop.is_set():
                self._delete_missing(paths)
            # After Ctrl-C the user is waiting: everything written is already committed
            # and searchable, and the next run compacts, so skip the (slow) optimize.
            if compact and not self.stop.is_set() and self.store.writes != writes_before:
                self.store.optimize(self.settings.version_retention_seconds)
            if embed and not self.stop.is_set():
                writes_before = self.store.writes
                self._embed_pending()
                if compact and self.store.writes != writes_before:
                    self.store.optimize(self.settings.version_retention_seconds)
        finally:
            self.report.interrupted = self.stop.is_set()
            self.report.seconds = time.perf_counter() - t0
            self.report.peak_rss_bytes = peak_rss_bytes()
            self.report.smallest_batch_size = getattr(self.governor, "smallest_batch_size", 0)
        return self.report

    # ------------------------------------------------------------ ingest
    def _sources(self, paths: Iterable[str] | None) -> Iterator[SourceFile | Skipped | str]:
        """Discovery output; for explicit paths, a str means 'gone or ignored: remove'."""
        if paths is None:
            yield from discovery.walk(self.settings)
            return
        matcher = discovery.IgnoreMatcher(self.settings)
        for rel in paths:
            item = discovery.check_path(self.settings, rel, matcher)
            yield rel if item is None else item

    def _ingest(self, paths: Iterable[str] | None) -> None:
        # Every discovered path is looked up once, against the files table as it was
        # when the run started (its own writes cannot change an answer).
        self._known = self.store.file_snapshot()
        q: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
        self.progress.phase("scanning", None)
        errors: list[BaseException] = []
        reader = threading.Thread(
            target=self._read_loop, args=(paths, q, errors), name="codeindex-reader", daemon=True
        )
        reader.start()
        consumed = 0
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                self._consume(item)
                consumed += 1
                if consumed % 64 == 0 and self.governor.pressure() != Pressure.NORMAL:
                    self._flush()  # flush write buffers early under memory pressure
                    release_caches()
            self._flush()
        except BaseException:
            self._abort.set()
            raise
        finally:
            # Drain so a blocked reader can finish, then join.
            while reader.is_alive():
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.1)
            reader.join()
            self._known = FileSnapshot(None)  # drop the pinned handle and its caches
        if errors:
            raise errors[0]

    def _read_loop(self, paths, q: queue.Queue, errors: list[BaseException]) -> None:
        try:
            batch: list[SourceFile | Skipped | str] = []
            for item in self._sources(paths):
                if self.stop.is_set() or self._abort.is_set():
                    break
                batch.append(item)
                if len(batch) >= _LOOKUP_BATCH:
                    self.governor.wait_for_room(self.stop, log=log)  # hard pressure
                    self._classify(batch, q)
                    batch = []
            if batch and not self.stop.is_set():
                self._classify(batch, q)
        except BaseException as exc:  # surfaced by the writer thread
            errors.append(exc)
        finally:
            q.put(_DONE)

    def _classify(self, batch: list[SourceFile | Skipped | str], q: queue.Queue) -> None:
        paths = [it if isinstance(it, str) else it.path for it in batch]
        known = self._known.get(paths)
        for item in batch:
            if self.stop.is_set() or self._abort.is_set():
                return
            if isinstance(item, str):
                if item in known:
                    q.put(("gone", item))
                continue
            self._seen.append(_path_key(item.path))
            old = known.get(item.path)
            if isinstance(item, Skipped):
                if (self.settings.root / item.path).is_dir():
                    self._protected_prefixes.append(item.path.rstrip("/") + "/")
                if old is None or old.skip_reason != item.reason:
                    q.put(_Skip(item))
                else:
                    q.put(("unchanged", item.path))
                continue
            if (
                old is not None
                and not old.skip_reason
                and old.content_hash
                and old.size == item.size
                and old.mtime_ns == item.mtime_ns
            ):
                q.put(("unchanged", item.path))
                continue
            if item.size > self.settings.stream_threshold_bytes:
                q.put(_Stream(item, old is None))
                continue
            q.put(self._read_small(item, old))

    def _read_small(self, src: SourceFile, old: FileRecord | None) -> Any:
        try:
            with open_binary(str(src.abs_path)) as fh:
                data = fh.read(self.settings.stream_threshold_bytes + 1)
        except FileNotFoundError:
            return _Skip(Skipped(src.path, SkipReason.VANISHED, "deleted while indexing"))
        except OSError as exc:
            return _Skip(Skipped(src.path, SkipReason.UNREADABLE, str(exc)))
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        record = FileRecord(
            path=src.path,
            size=src.size,
            mtime_ns=src.mtime_ns,
            content_hash=digest,
            language=src.language,
            chunk_count=0,
            indexed_at=time.time(),
        )
        if old is not None and not old.skip_reason and old.content_hash == digest:
            return _Touch(_replace(record, chunk_count=old.chunk_count))
        text = chunking.decode(data)
        del data
        try:
            chunks = chunking.chunk_text(
                src.path, text, src.language, self.settings, self._count_tokens
            )
        except RecursionError:  # pathological nesting: fall back to line windows
            chunks = list(
                chunking.line_chunks(
                    src.path,
                    chunking.iter_lines(text),
                    src.language,
                    self.settings,
                    self._count_tokens,
                )
            )
        return _Parsed(_replace(record, chunk_count=len(chunks)), chunks, old is None)

    def _consume(self, item: Any) -> None:
        rep = self.report
        if isinstance(item, tuple):
            kind, path = item
            if kind == "unchanged":
                rep.unchanged += 1
            elif kind == "gone":
                self._delete_later(path)
                rep.deleted += 1
            self.progress.advance(1)
            return
        if isinstance(item, _Parsed):
            prio = file_priority(item.record.language, item.record.size, self.settings)
            if item.is_new and self.clean_start:
                self._buf_new_records.append(item.record)
                self._buf_new.extend((c, prio) for c in item.chunks)
            else:
                self._buf_records.append(item.record)
                self._buf_paths.append(item.record.path)
                self._buf_chunks.extend((c, prio) for c in item.chunks)
            if item.is_new:
                rep.added += 1
            else:
                rep.updated += 1
            if (
                len(self._buf_chunks) + len(self._buf_new) >= self.settings.write_batch_rows
                or len(self._buf_records) + len(self._buf_new_records) >= _LOOKUP_BATCH
            ):
                self._flush()
        elif isinstance(item, _Touch):
            self._buf_records.append(item.record)
            rep.unchanged += 1
        elif isinstance(item, _Skip):
            sk = item.skipped
            rep.skipped[sk.reason] = rep.skipped.get(sk.reason, 0) + 1
            if sk.reason in _FAILED_READ:
                rep.failed.append({"path": sk.path, "reason": sk.reason, "detail": sk.detail})
            if sk.reason == SkipReason.VANISHED:
                self._delete_later(sk.path)
            else:
                self._buf_paths.append(sk.path)  # drop any chunks it had
                self._buf_records.append(
                    FileRecord(sk.path, 0, 0, "", "", 0, time.time(), sk.reason, sk.detail)
                )
        elif isinstance(item, _Stream):
            self._flush()
            self._stream(item)
        self.progress.advance(1)

    def _delete_later(self, path: str) -> None:
        """Remove ``path`` from the index with the next flush: the paths of a batch go in
        one delete (two commits however many files a watched folder held)."""
        if any(r.path == path for r in (*self._buf_records, *self._buf_new_records)):
            self._flush()  # its buffered write must not land after the delete
        self._buf_gone.append(path)
        if len(self._buf_gone) >= _LOOKUP_BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the buffer: one atomic chunk swap for changed files, one append for new
        files' chunks, then all their records (so a record never precedes its chunks),
        then the deletes (after the writes, which could still reuse their vectors)."""
        if (
            not self._buf_records
            and not self._buf_paths
            and not self._buf_new_records
            and not self._buf_gone
        ):
            return
        chunks = self._buf_chunks
        if self._buf_paths:
            self.store.replace_files(self._buf_paths, self._rows(chunks, ordinals=None))
        if self._buf_new:
            self.store.add_chunks(self._rows(self._buf_new, ordinals=None))
        # New files after a clean run have no record yet: append, no join. (An upsert
        # joins the whole files table, which has no index until the run's first
        # compaction: its cost grew with the table through a first run.)
        if self._buf_new_records or self._buf_records:
            self.store.add_files(self._buf_new_records)
            self.store.upsert_files(self._buf_records)
        if self._buf_gone:
            self.store.delete_paths(self._buf_gone)
        self.report.chunks_written += len(chunks) + len(self._buf_new)
        self._buf_new, self._buf_new_records, self._buf_gone = [], [], []
        self._wrote_batch()
        self._buf_records, self._buf_chunks, self._buf_paths = [], [], []

    def _wrote_batch(self) -> None:
        # Freed write buffers fragment the heap; give the pages back now and then, so RSS
        # stays flat over many small files.
        self._writes += 1
        if self._writes % 16 == 0:
            trim()

    def _rows(self, chunks: list[tuple[Chunk, int]], ordinals: list[int] | None) -> list[ChunkRow]:
        """The chunks (with their priorities) as rows: ids from each chunk's ordinal in
        its file (counted here when ``ordinals`` is None), stored vectors reused."""
        if not chunks:
            return []
        reuse = (
            self.store.vectors_for_hashes([c.content_hash for c, _ in chunks])
            if self._reuse
            else {}
        )
        if ordinals is None:
            ordinals, counters = [], {}
            for c, _ in chunks:
                n = counters.get(c.path, 0)
                counters[c.path] = n + 1
                ordinals.append(n)
        rows = [
            ChunkRow(_chunk_id(c.path, o, c.content_hash), c, p, reuse.get(c.content_hash))
            for (c, p), o in zip(chunks, ordinals, strict=True)
        ]
        self.report.chunks_reused += sum(r.vector is not None for r in rows)
        return rows

    def _stream(self, item: _Stream) -> None:
        """A big file: never read whole. Its chunks replace the old ones as one
        streamed append, built in bounded batches while it writes (unchanged chunks
        keep their vectors); the file's record is marked incomplete first and
        completed last."""
        src = item.source
        rep = self.report
        pending = FileRecord(src.path, src.size, src.mtime_ns, "", src.language, 0, time.time())
        self.store.upsert_files([pending])
        done = _Streamed()
        try:
            self.store.replace_streamed(src.path, self._stream_batches(src, done))
        except FileNotFoundError:
            self.store.delete_paths([src.path])
            rep.skipped[SkipReason.VANISHED] = rep.skipped.get(SkipReason.VANISHED, 0) + 1
            return
        except OSError as exc:  # nothing committed: drop the old chunks too
            self.store.delete_chunks_of([src.path])
            self.store.upsert_files(
                [
                    FileRecord(
                        src.path, 0, 0, "", "", 0, time.time(), SkipReason.UNREADABLE, str(exc)
                    )
                ]
            )
            rep.skipped[SkipReason.UNREADABLE] = rep.skipped.get(SkipReason.UNREADABLE, 0) + 1
            rep.failed.append(
                {"path": src.path, "reason": SkipReason.UNREADABLE, "detail": str(exc)}
            )
            return
        if done.digest is None:
            return  # stopped: the record stays incomplete, so the next run redoes it
        record = _replace(pending, content_hash=done.digest, chunk_count=done.count)
        self.store.upsert_files([record])
        if item.is_new:
            rep.added += 1
        else:
            rep.updated += 1

    def _stream_batches(self, src: SourceFile, done: _Streamed) -> Iterator[list[ChunkRow]]:
        """The chunks of a streamed file, ``write_batch_rows`` at a time. Sets
        ``done.digest`` once the whole file was read (not when stopped early)."""
        prio = file_priority(src.language, src.size, self.settings)
        batch: list[tuple[Chunk, int]] = []
        ordinals: list[int] = []
        with open_binary(str(src.abs_path)) as raw:
            reader = _HashingReader(raw)
            for chunk in chunking.chunk_stream(
                src.path, reader, src.language, self.settings, self._count_tokens
            ):
                batch.append((chunk, prio))
                ordinals.append(done.count)
                done.count += 1
                if len(batch) >= self.settings.write_batch_rows:
                    yield self._rows(batch, ordinals)
                    self.report.chunks_written += len(batch)
                    batch, ordinals = [], []
                    # Each batch frees its buffers: give the pages back at once, so
                    # RSS holds level through the whole file.
                    trim()
                    if self.stop.is_set():
                        return
            if batch:
                yield self._rows(batch, ordinals)
                self.report.chunks_written += len(batch)
            done.digest = reader.hexdigest()

    def _delete_missing(self, paths: Iterable[str] | None) -> None:
        """Whole-root runs: remove indexed files that discovery no longer yields."""
        if paths is not None:
            return
        seen = np.frombuffer(self._seen, dtype=np.uint64)
        seen = np.sort(seen)
        gone: list[str] = []
        for path in self.store.iter_file_paths():
            key = np.uint64(_path_key(path))
            i = int(np.searchsorted(seen, key))
            if (i >= len(seen) or seen[i] != key) and not path.startswith(
                tuple(self._protected_prefixes)
            ):
                gone.append(path)
        if gone:
            self.store.delete_paths(gone)
            self.report.deleted += len(gone)

    # ------------------------------------------------------------- embed
    def _embed_pending(self) -> None:
        total = self.store.count_pending()
        self.progress.phase("embedding", total)
        if total == 0:
            return
        pages = 0
        for priority in (0, 1, 2):
            while not self.stop.is_set():
                self.governor.wait_for_room(self.stop, log=log)
                page = self.store.pending_chunks(_EMBED_PAGE, priority)
                if not page:
                    break
                self._embed_page(page)
                trim()  # hand the batch's activations back before the next page
                pages += 1
                if pages % _OPTIMIZE_EVERY_PAGES == 0:
                    self.store.optimize(self.settings.version_retention_seconds, rebuild=False)
                    trim()
                if self.governor.pressure() != Pressure.NORMAL:
                    release_caches()

    def _embed_page(self, page: list[ChunkRow]) -> None:
        ids = [r.id for r in page]
        hashes = [r.chunk.content_hash for r in page]
        texts = [embedding_input(r.chunk.path, r.chunk.symbol, r.chunk.text) for r in page]
        # Identical inputs are embedded once; inputs already embedded elsewhere reuse.
        known = self.store.vectors_for_hashes(hashes)
        todo: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in known:
                todo.setdefault(h, t)
        fresh: dict[str, np.ndarray] = {}
        if todo:
            keys = list(todo)
            try:
                vecs = self.embedder.embed([todo[k] for k in keys])
                fresh = dict(zip(keys, vecs, strict=True))
            except EmbedError as exc:
                bad = {keys[i] for i in exc.failed}
                good = [k for k in keys if k not in bad]
                if good:
                    vecs = self.embedder.embed([todo[k] for k in good])
                    fresh = dict(zip(good, vecs, strict=True))
                bad_ids = [i for i, h in zip(ids, hashes, strict=True) if h in bad]
                self.store.mark_embed_failed(bad_ids, "out of memory at batch size 1")
                for path in sorted({r.chunk.path for r in page if r.chunk.content_hash in bad}):
                    self.report.failed.append(
                        {"path": path, "reason": SkipReason.EMBED_FAILED, "detail": str(exc)}
                    )
        rows, out_vecs = [], []
        for row, h in enumerate(hashes):
            v = fresh.get(h)
            if v is None:
                v = known.get(h)
            if v is not None:
                rows.append(row)
                out_vecs.append(v)
        if rows:
            self.store.set_vectors([page[i] for i in rows], np.stack(out_vecs))
        self.report.chunks_embedded += len(fresh)
        # Rows filled without running the model: stored duplicates and in-page repeats.
        self.report.chunks_reused += len(rows) - len(fresh)
        self.progress.advance(len(ids), embedded=len(fresh))


def _replace(record: FileRecord, **changes: Any) -> FileRecord:
    import dataclasses

    return dataclasses.replace(record, **changes)
