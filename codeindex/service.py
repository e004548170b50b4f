"""CodeIndex: the one API every front end (CLI, MCP, watcher) calls.

Front ends parse input, call one method here and render the returned typed values
(codeindex.types; ``as_dict()`` is their JSON shape);
validation, filtering and ranking live here or below.

Why one module of ~650 lines: it is the ``CodeIndex`` class, the boundary itself; each
method validates, opens the store once and hands over to a lower module (``pipeline``
runs an index, ``ranking`` orders a search, ``storage`` pages files), so what remains
here is the contract of each operation, in one place for the front ends to read.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from codeindex import discovery, memory, runstate
from codeindex.config import SCHEMA_VERSION, Settings, check_path_length
from codeindex.embedding import Embedder, get_embedder
from codeindex.errors import (
    CodeIndexError,
    IncompatibleIndexError,
    IndexMissingError,
    PathOutsideRootError,
)
from codeindex.locking import WriterLock, is_locked
from codeindex.pipeline import Pipeline
from codeindex.ranking import CANDIDATES, Ranking, definition_names, match_line, rank
from codeindex.reading import NotRegularFileError, SymlinkInPathError, open_beneath
from codeindex.storage import Filter, Store, decode_cursor, encode_cursor, index_exists
from codeindex.storage.cursor import fingerprint
from codeindex.types import (
    FileEntry,
    FilePage,
    IndexReport,
    IndexState,
    IndexStatus,
    Progress,
    RunProgress,
    SearchHit,
    SearchPage,
    embedding_input,
    utc_iso,
)

log = logging.getLogger(__name__)

_REOPEN_AFTER_VERSIONS = 16
# The deepest file-list cursor accepted: far beyond any repository's file count, far
# below what would overflow the storage layer's 64-bit offsets.
_MAX_FILES_OFFSET = 10**9


class CodeIndex:
    """One indexed root.

    ``long_lived=True`` (MCP server, watcher) makes readers always see the newest
    committed version. Methods are safe to call from several threads; writes are
    serialised by the writer lock (also across processes).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        long_lived: bool = False,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self.long_lived = long_lived
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self.lock = WriterLock(settings.index_dir)
        self._write_guard = threading.Lock()  # one writer thread in this process
        self.current_run: dict[str, Any] | None = None  # progress of a run in this process
        self._runs = 0  # index() calls in progress in this process, waiting ones included
        self._runs_lock = threading.Lock()
        # Set by an in-process watcher (MCP server); otherwise status reads watcher.json.
        self.watcher_status: Callable[[], dict[str, Any]] | None = None
        self.last_report: IndexReport | None = None
        # (store, meta version, compatibility()) of the last check, see _require_searchable
        self._compat_checked: tuple[Store, int, tuple[bool, str]] | None = None

    # ------------------------------------------------------------ plumbing
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.settings)
        return self._embedder

    def _open_store(self, create: bool = False) -> Store:
        with self._store_lock:
            if (
                self._store is not None
                and self.long_lived
                and self._store.versions_since_open() > _REOPEN_AFTER_VERSIONS
            ):
                # LanceDB's caches keep handles on index files of old versions (one per
                # version, deleted files included): a long-lived reader that follows
                # many versions reopens so descriptors and memory stay flat.
                self._store = None
            if self._store is None:
                if not create and not index_exists(self.settings.index_dir):
                    raise IndexMissingError(
                        f"no index for {self.settings.root} (looked in "
                        f"{self.settings.index_dir}); run `codeindex index {self.settings.root}`."
                    )
                self._store = Store(
                    self.settings.index_dir,
                    self.embedder_dimension(),
                    create=create,
                    consistency_seconds=0.0 if self.long_lived else None,
                )
            return self._store

    @property
    def running(self) -> bool:
        """True while an ``index()`` call of this process is in progress, including one
        that still waits for the writer lock."""
        return self._runs > 0

    def embedder_dimension(self) -> int:
        # The real model's dimension is known without loading it.
        return self.embedder.dimension

    def close(self) -> None:
        with self._store_lock:
            self._store = None

    def compatibility(self) -> tuple[bool, str]:
        """(compatible, reason). Missing index counts as compatible-but-empty."""
        if not index_exists(self.settings.index_dir):
            return True, ""
        meta = self._open_store().read_meta()
        if not meta:
            return True, ""
        wanted = {
            "schema_version": str(SCHEMA_VERSION),
            "model": self.settings.model,
            "dimension": str(self.embedder_dimension()),
            "options_hash": self.settings.options_hash(),
        }
        for key, value in wanted.items():
            if meta.get(key) != value:
                return False, (
                    f"the index was built with {key}={meta.get(key)!r} but the current "
                    f"settings need {value!r}; run `codeindex index {self.settings.root}` "
                    "to rebuild it"
                )
        return True, ""

    def _require_searchable(self) -> Store:
        store = self._open_store()
        # The meta table changes only when a run writes it: check once per version.
        version = store.meta_version()
        cached = self._compat_checked
        if cached is not None and cached[0] is store and cached[1] == version:
            ok, why = cached[2]
        else:
            ok, why = self.compatibility()
            self._compat_checked = (store, version, (ok, why))
        if not ok:
            raise IncompatibleIndexError(why)
        return store

    # --------------------------------------------------------------- write
    def index(
        self,
        paths: Iterable[str] | None = None,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        wait: bool = True,
        on_wait: Callable[[str], None] | None = None,
        embed: bool = True,
        compact: bool = True,
    ) -> IndexReport:
        """Build or update the index (whole root, or just ``paths``).

        Takes the writer lock (waits, or raises LockBusyError when ``wait`` is
        False). An index built with other settings is rebuilt from scratch.
        ``compact=False`` skips the closing optimize() (the watcher's small updates:
        compaction rewrites the chunks table and would dominate save-to-searchable
        latency); the caller must call ``compact()`` later. New rows are searchable
        either way.
        """
        with self._runs_lock:
            self._runs += 1
        try:
            with self._write_guard:
                self.lock.acquire(wait=wait, on_wait=on_wait)
                try:
                    return self._index_locked(paths, progress, stop, embed, compact)
                finally:
                    self.lock.release()
        finally:
            with self._runs_lock:
                self._runs -= 1

    def compact(self, *, wait: bool = False) -> bool:
        """Compact the tables and drop old versions (what index() does at its end).
        Takes the writer lock; returns False when the index does not exist."""
        with self._write_guard:
            self.lock.acquire(wait=wait)
            try:
                if not index_exists(self.settings.index_dir):
                    return False
                self._open_store().optimize(self.settings.version_retention_seconds)
                return True
            finally:
                self.lock.release()

    update = index

    def _index_locked(self, paths, progress, stop, embed, compact=True) -> IndexReport:
        if index_exists(self.settings.index_dir):
            ok, why = self.compatibility()
            if not ok:
                log.warning("rebuilding the index: %s", why)
                self._drop_index()
                paths = None
        store = self._open_store(create=True)
        previous = store.read_meta().get("run_state")
        # Clean when the last run finished (or nothing was ever written).
        clean = previous == "ready" or (previous is None and store.count_chunks() == 0)
        store.write_meta(
            {
                "schema_version": str(SCHEMA_VERSION),
                "model": self.settings.model,
                "dimension": str(self.embedder_dimension()),
                "options_hash": self.settings.options_hash(),
                "root": str(self.settings.root),
                "run_state": "indexing",
                "run_started_at": str(time.time()),
            }
        )
        tracker = _RunTracker(progress)
        self.current_run = tracker.state
        pipe = Pipeline(
            self.settings, store, self.embedder, progress=tracker, stop=stop, clean_start=clean
        )
        runstate.clean_stale_temp_files(self.settings.index_dir)
        try:
            report = pipe.run(paths, embed=embed, compact=compact)
        finally:
            self.current_run = None
        if not clean and not report.interrupted:
            # A killed run may have left data files no version references.
            store.optimize(self.settings.version_retention_seconds, delete_unverified=True)
        state = "interrupted" if report.interrupted else "ready"
        store.write_meta({"run_state": state, "last_indexed_at": str(time.time())})
        store.optimize_meta(self.settings.version_retention_seconds)
        self.last_report = report
        if self.long_lived:
            self.close()  # drop caches of the versions this run replaced (see _open_store)
        return report

    def _drop_index(self) -> None:
        self.close()
        for child in self.settings.index_dir.glob("*.lance"):
            shutil.rmtree(child, ignore_errors=True)

    # ---------------------------------------------------------------- read
    def search(
        self,
        query: str,
        k: int = 10,
        *,
        language: str = "",
        glob: str = "",
        cursor: str = "",
        semantic: bool = True,
        ranking: Ranking | None = None,
        run_pending: bool = False,
    ) -> SearchPage:
        """Hybrid search: one page of ranked hits.

        ``semantic=False`` skips embedding the query (full-text side only), so a
        long-lived server can answer while its model is still loading. ``ranking``
        switches retrievers or rules off (benchmark ablations); default: all on.
        The page's ``semantic`` says whether the vector side ran: not with
        ``semantic=False``, with the vector retriever off, or while nothing is embedded.
        Refuses queries over ``max_query_chars``, ``k`` outside 1..``max_k``, pages
        beyond ``max_search_depth`` hits (settings), globs too long to be a path, and
        cursors that are not this index's (BadCursorError).

        An index that does not exist yet, or is incompatible and so about to be rebuilt,
        raises IndexMissingError / IncompatibleIndexError, unless a run is building it:
        one of this process (:attr:`running`) or one the caller has queued
        (``run_pending``: a long-lived front end's catch-up or watcher). Then the answer
        is "no results yet", an empty page with coverage 0.0."""
        limits = self.settings
        query = (query or "").strip()
        if not query:
            raise CodeIndexError("the query is empty; say what code you are looking for.")
        if len(query) > limits.max_query_chars:
            raise CodeIndexError(
                f"the query is {len(query)} characters; keep it under {limits.max_query_chars}."
            )
        self._check_k(k)
        check_path_length(glob, "glob")
        try:
            store = self._require_searchable()
        except (IndexMissingError, IncompatibleIndexError):
            if run_pending or self.running:
                return SearchPage.empty(query)
            raise
        fp = fingerprint("search", query, k, language, glob)
        offset = 0
        if cursor:
            depth = limits.max_search_depth
            offset = decode_cursor(cursor, "search", fp, store.cursor_key, max_offset=depth)[0]
        if offset + k > limits.max_search_depth:
            raise CodeIndexError(
                f"results beyond the first {limits.max_search_depth} are not served; "
                "refine the query."
            )
        where = Filter(language=language, glob=glob)
        # Ranking works on files, not single chunks, so it needs more candidates than
        # the page; pages within the first CANDIDATES continue one ranking.
        fetch = min(limits.max_search_depth, max(offset + k + 1, CANDIDATES))
        total = store.count_chunks()
        with_vec = store.count_with_vectors() if total else 0
        ranking = ranking or Ranking()
        names = definition_names(query) if "definition" in ranking.rules else []

        # The word side runs in a thread beside the query's embedding and the vector
        # search (both release the GIL): the search waits for the slower side only. It
        # reads its candidates' text there, hidden behind the vector side; vector
        # candidates come without it, and the page's missing texts are read below.
        def words_side() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            text = store.text_search(query, fetch, where) if ranking.lexical else []
            defs = store.definitions(names, 50, where, with_text=False) if names else []
            return text, defs

        words = _Background(words_side) if ranking.lexical or names else None
        vector_hits: list[dict[str, Any]] = []
        semantic = bool(with_vec and semantic and ranking.vector)
        if semantic:
            qvec = self.embedder.embed_query(query)  # torch-free where it can be
            vector_hits = store.vector_search(
                qvec, fetch, where, with_text=False, all_embedded=with_vec == total
            )
        text_hits, definitions = words.result() if words else ([], [])
        fused = rank(
            vector_hits,
            text_hits,
            query,
            definitions=definitions,
            rules=ranking.rules,
            limit=offset + k + 1,  # one more than the page says whether a next page exists
        )
        page = fused[offset : offset + k]
        missing = [r["id"] for r in page if r.get("text") is None]
        if missing:
            texts = store.chunk_texts(missing)
            # A chunk replaced since the candidates were read has no text now: skip it.
            page = [
                r if r.get("text") is not None else {**r, "text": texts[r["id"]]}
                for r in page
                if r.get("text") is not None or r["id"] in texts
            ]
        next_cursor = (
            encode_cursor("search", fp, offset + k, 0, store.cursor_key)
            if len(fused) > offset + k
            else None
        )
        return SearchPage(
            query=query,
            results=tuple(self._hit(r, query) for r in page),
            next_cursor=next_cursor,
            coverage=round(with_vec / total, 4) if total else 0.0,
            semantic=semantic,
        )

    def _check_k(self, k: int) -> None:
        """Refuse a hit count outside 1..``max_k`` (search and find_similar)."""
        if not 1 <= int(k) <= self.settings.max_k:
            raise CodeIndexError(f"k must be between 1 and {self.settings.max_k} (got {k}).")

    @staticmethod
    def _hit(row: dict[str, Any], query: str = "") -> SearchHit:
        """A ranked row as a hit (``match_line``: see SearchHit)."""
        start, text = int(row["start_line"]), row.get("text") or ""
        return SearchHit(
            path=row["path"],
            start_line=start,
            end_line=int(row["end_line"]),
            score=row["score"],
            symbol=row.get("symbol") or "",
            language=row.get("language") or "",
            snippet=text,
            match_line=match_line(text, start, query) if query else start,
        )

    def list_files(
        self,
        *,
        page_size: int = 100,
        cursor: str = "",
        glob: str = "",
        language: str = "",
        skipped: bool = False,
    ) -> FilePage:
        """One page of indexed (or, with skipped=True, skipped) files.

        The cursor pins the table version it was cut from, so paging to the end
        visits every file of that snapshot exactly once; ``index_changed`` says the
        index has moved on since. Refuses ``page_size`` outside 1..``max_page_size``, globs
        too long to be a path, and cursors that are not this index's (BadCursorError).
        """
        limit = self.settings.max_page_size
        if not 1 <= int(page_size) <= limit:
            raise CodeIndexError(f"page_size must be between 1 and {limit}.")
        check_path_length(glob, "glob")
        store = self._open_store()
        fp = fingerprint("files", glob, language, skipped)
        offset, version = (
            decode_cursor(cursor, "files", fp, store.cursor_key, max_offset=_MAX_FILES_OFFSET)
            if cursor
            else (0, None)
        )
        where = Filter(language=language, glob=glob, skipped=skipped)
        records, used_version = store.page_files(where, offset, page_size + 1, version)
        more = len(records) > page_size
        records = records[:page_size]
        if skipped:
            files = [
                FileEntry(r.path, skipped=True, reason=r.skip_reason, detail=r.skip_detail)
                for r in records
            ]
        else:
            files = [
                FileEntry(r.path, r.language, r.size, r.chunk_count, utc_iso(r.indexed_at))
                for r in records
            ]
        latest = store.files_version()
        return FilePage(
            files=tuple(files),
            next_cursor=(
                encode_cursor("files", fp, offset + page_size, used_version, store.cursor_key)
                if more
                else None
            ),
            total=store.count_files(where) if used_version == latest else None,
            index_changed=used_version != latest,
        )

    def status(self, *, check_stale: bool = True) -> IndexStatus:
        """State, counts, coverage, model, disk and memory telemetry.

        ``check_stale`` walks the tree (stat only) to notice files changed since the
        last run; without it only an interrupted run or missing vectors make the
        index stale."""
        s = self.settings
        mem = memory.snapshot(s.memory_limit_mb)
        if s.memory_limit_mb:
            mem["limit_source"] = "memory_limit_mb (" + s.sources.get("memory_limit_mb", "") + ")"
        run = self.current_run  # read once: the run may end meanwhile
        common = {  # in every status, whether or not an index exists
            "root": str(s.root),
            "index_dir": str(s.index_dir),
            "memory": mem,
            "run": _RunTracker.view(run) if run is not None else None,
            "watcher": (
                self.watcher_status()
                if self.watcher_status
                else runstate.watcher_state(s.index_dir)
            ),
        }
        if not index_exists(s.index_dir):
            return IndexStatus(state=IndexState.MISSING, model=s.model, **common)
        store = self._open_store()
        meta = store.read_meta()
        total = store.count_chunks()
        with_vec = store.count_with_vectors() if total else 0
        files = store.count_indexed_files()
        skipped = store.skip_counts()
        disk_bytes = store.disk_bytes()
        embed_failed = store.count_embed_failed() if total else 0
        ok, why = self.compatibility()
        if not ok:
            state = IndexState.INCOMPATIBLE
        elif self.lock.held or is_locked(s.index_dir):
            state = IndexState.INDEXING
        elif self._is_stale(
            meta,
            chunks=total,
            settled=with_vec + embed_failed,
            known_files=files + sum(skipped.values()),
            check_tree=check_stale,
        ):
            state = IndexState.STALE
        else:
            state = IndexState.READY
        return IndexStatus(
            state=state,
            model=meta.get("model", s.model),
            dimension=int(meta["dimension"]) if meta.get("dimension") else None,
            files=files,
            chunks=total,
            chunks_with_vectors=with_vec,
            coverage=round(with_vec / total, 4) if total else 0.0,
            skipped=skipped,
            disk_bytes=disk_bytes,
            last_indexed_at=utc_iso(float(meta.get("last_indexed_at") or 0)),
            incompatible_reason=None if ok else why,
            embed_failed=embed_failed,
            **common,
        )

    def _is_stale(
        self, meta: dict[str, str], *, chunks: int, settled: int, known_files: int, check_tree: bool
    ) -> bool:
        """Interrupted run, chunks neither embedded nor failed (``settled`` of
        ``chunks`` are), or (check_tree) files changed since the last run."""
        if meta.get("run_state") != "ready":
            return True
        if chunks and settled < chunks:
            return True
        if not check_tree:
            return False
        last = float(meta.get("last_indexed_at") or 0)
        return self._tree_changed_since(last, known_files)

    def _tree_changed_since(self, since: float, known_files: int) -> bool:
        """A stat-only walk: any file newer than the last run, or a different count."""
        seen = 0
        for item in discovery.walk(self.settings):
            seen += 1
            mtime = getattr(item, "mtime_ns", 0)
            if mtime and mtime / 1e9 > since:
                return True
        return seen != known_files

    # ---------------------------------------------------------------- code
    def get_code(self, path: str, start_line: int, end_line: int) -> dict[str, Any]:
        """The current text of lines [start_line, end_line] (1-based, inclusive) of a
        file inside the root. Refuses paths outside the root or too long for the OS,
        ignored or deny-listed files, and ranges over ``max_code_lines`` lines or
        ``max_code_bytes`` characters (settings)."""
        limits = self.settings
        if start_line < 1 or end_line < start_line:
            raise CodeIndexError(
                "start_line must be ≥ 1 and end_line ≥ start_line (1-based, inclusive)."
            )
        if end_line - start_line + 1 > limits.max_code_lines:
            raise CodeIndexError(f"ask for at most {limits.max_code_lines} lines at a time.")
        try:
            abs_path = discovery.resolve_inside_root(self.settings, path)
        except OSError:
            # realpath is not atomic: a component swapped between its lstat and its
            # readlink fails there (EINVAL, ENOENT) rather than resolving to anything.
            raise CodeIndexError(f"{path} changed while being read; try again.") from None
        rel = abs_path.relative_to(self.settings.root).as_posix()
        if discovery.IgnoreMatcher(self.settings).is_ignored(rel):
            raise PathOutsideRootError(
                f"{path} is ignored or deny-listed for indexing; "
                "it cannot be read through codeindex."
            )
        if not abs_path.is_file():
            raise CodeIndexError(f"{path} is not a file inside {self.settings.root}.")
        lines: list[str] = []
        size = 0
        last_line = 0
        with self._open_checked(path, rel) as fh:
            for n, raw in enumerate(fh, start=1):  # streams: never the whole file
                last_line = n
                if n < start_line:
                    continue
                if n > end_line:
                    break
                text = raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
                size += len(text)
                if size > limits.max_code_bytes:
                    raise CodeIndexError("that range is too large; ask for fewer lines.")
                lines.append(text)
        if start_line > last_line:
            raise CodeIndexError(f"{path} has only {last_line} lines.")
        return {
            "path": rel,
            "start_line": start_line,
            "end_line": start_line + len(lines) - 1,
            "text": "\n".join(lines).lstrip("\ufeff") if start_line == 1 else "\n".join(lines),
        }

    def _open_checked(self, path: str, rel: str) -> BinaryIO:
        """Open ``rel`` (the symlink-resolved path get_code checked, relative to the real
        root) for reading, refusing anything that changed since the check with a
        CodeIndexError that says what to do (``path`` is what the caller asked for).

        The open walks ``rel`` component by component from the real root with
        ``O_NOFOLLOW`` (reading.open_beneath): a file or parent directory swapped for a
        symlink after the check fails to open instead of being followed out of the root.
        Links inside the root keep working: ``rel`` is already resolved.

        Not covered: a hard link inside the root to a deny-listed or outside file. An
        ``st_nlink`` above 1 says other names exist but not which (finding them means
        walking the file system), so it is not refused; making hard links needs write
        access to the tree and, on Linux, ownership of or read-write access to the target
        (fs.protected_hardlinks).
        """
        changed = f"{path} changed while being read; try again."
        real_root = os.path.realpath(self.settings.root)
        try:
            fd, _ = open_beneath(real_root, rel.split("/"))
        except (SymlinkInPathError, FileNotFoundError, NotADirectoryError):
            raise CodeIndexError(changed) from None
        except NotRegularFileError as exc:
            if exc.kind == "symbolic link":  # rel was resolved: a link is a swap since
                raise CodeIndexError(changed) from None
            # swapped for a FIFO or device since the check
            raise CodeIndexError(f"{path} is {exc.strerror}; it cannot be read.") from None
        except OSError as exc:
            raise CodeIndexError(f"{path} cannot be read: {exc.strerror}.") from None
        return os.fdopen(fd, "rb")

    def find_similar(
        self, path: str, start_line: int, end_line: int, k: int = 10
    ) -> dict[str, Any]:
        """Code resembling the given range, excluding the range itself (``k`` as in
        search; the range as in get_code)."""
        self._check_k(k)
        code = self.get_code(path, start_line, end_line)
        store = self._require_searchable()
        vec = store.chunk_vector_at(code["path"], start_line, end_line)
        if vec is None:
            vec = self.embedder.embed([embedding_input(code["path"], "", code["text"])])[0]
        hits = store.vector_search(vec, k + 20, None)
        results = []
        for row in hits:
            if (
                row["path"] == code["path"]
                and row["start_line"] <= end_line
                and (row["end_line"] >= start_line)
            ):
                continue
            row["score"] = round(1.0 - float(row.get("_distance", 1.0)), 6)
            results.append(self._hit(row).as_dict())
            if len(results) >= k:
                break
        return {
            "path": code["path"],
            "start_line": start_line,
            "end_line": end_line,
            "results": results,
        }


class _Background:
    """Runs ``fn`` in a short-lived thread; :meth:`result` joins it and returns its
    value or raises its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="codeindex-search", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _RunTracker:
    """Wraps a front end's Progress and records done/total/rate for status()."""

    def __init__(self, inner: Progress | None) -> None:
        self.inner = inner
        self.state: dict[str, Any] = {
            "started_at": time.time(),
            "phase": "starting",
            "done": 0,
            "total": None,
            "phase_started": time.monotonic(),
        }

    def phase(self, name: str, total: int | None) -> None:
        self.state.update(phase=name, total=total, done=0, phase_started=time.monotonic())
        if self.inner:
            self.inner.phase(name, total)

    def advance(self, n: int = 1, **info: Any) -> None:
        self.state["done"] += n
        if self.inner:
            self.inner.advance(n, **info)

    @staticmethod
    def view(state: dict[str, Any]) -> RunProgress:
        """The run's progress, with rate (items/s) and ETA (seconds) where known."""
        elapsed = max(1e-6, time.monotonic() - state["phase_started"])
        rate = state["done"] / elapsed
        total = state["total"]
        eta = (total - state["done"]) / rate if total is not None and rate > 0 else None
        return RunProgress(
            phase=state["phase"],
            done=state["done"],
            total=total,
            rate_per_s=round(rate, 2),
            eta_seconds=None if eta is None else round(eta, 1),
            started_at=utc_iso(state["started_at"]),
        )


def open_index(settings: Settings, **kwargs: Any) -> CodeIndex:
    """Convenience constructor used by front ends."""
    return CodeIndex(settings, **kwargs)


def relative_to_root(settings: Settings, path: str | Path) -> str:
    """A user-given path (absolute or relative to cwd) as a root-relative POSIX path."""
    p = Path(path)
    abs_p = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return abs_p.relative_to(settings.root).as_posix()
    except ValueError:
        raise PathOutsideRootError(f"{path} is outside the indexed root {settings.root}.") from None
