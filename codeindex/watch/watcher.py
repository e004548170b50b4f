"""Watch mode: keep the index following the working tree.

    watchdog events ─▶ filter (IgnoreMatcher) ─▶ coalesce per path (bounded dict)
        ─▶ debounce ─▶ ONE worker thread ─▶ CodeIndex.index(paths=...) under the writer lock

Contracts:

* **Startup.** ``Watcher.start()`` schedules the observers first and then queues a
  reconcile pass (a full ``CodeIndex.index()``) that the worker thread runs at once, so
  changes made while nothing was watching are picked up and nothing that changes during
  the pass is missed (the watches already exist). ``start()`` returns as soon as the
  watches are in place; ``wait_idle()`` waits for the reconcile to finish.
* **Watches.** What is watched (the root, each non-ignored top-level directory), the
  polling fallback and kernel overflows: ``observers.py`` and ``inotify.py``.
* **Coalescing and debounce.** Events are coalesced per path. A batch is applied once no
  event arrived for ``settings.debounce_ms`` or, for a tree that never goes quiet, at the
  latest ``settings.max_debounce_ms`` after its first event. One batch is one
  ``CodeIndex.index(paths=...)`` call: existing paths are listed before vanished ones so
  that in a rename/move the new path is written (reusing the stored vectors of identical
  chunks) before the old path's chunks are deleted — a pure move embeds nothing.
* **Compaction off the critical path.** Updates are applied with ``compact=False``: new
  rows are searchable at once (unindexed rows are scanned), and compaction, which
  rewrites the chunks table, runs when the tree has been quiet for
  ``compact_after_idle`` seconds, after ``_COMPACT_EVERY`` updates in a row, and on a
  flushing stop — so versions and fragments stay bounded without taxing every save.
* **Bounded memory.** At most ``settings.event_queue_limit`` paths/directories are
  pending; one more switches to a reconcile of the whole root (which streams) instead of
  dropping changes, and further events are not recorded until that reconcile starts.
  One worker thread; no thread per event.
* **Ignore rules.** A change to a ``.gitignore`` / ``.codeindexignore`` invalidates the
  matcher, re-evaluates which top-level directories are watched and runs a reconcile, so
  newly ignored files leave the index and newly un-ignored ones enter it.
* **One writer.** The writer lock is taken per update (never held while idle), so a
  ``codeindex index`` in another process can interleave; while another process holds it
  the worker retries (``status()["waiting_for_lock"]`` says so) and events keep coalescing.
* **Status.** ``status()`` for in-process callers (``start()`` installs it as
  ``CodeIndex.watcher_status``); the same dict is published to ``watcher.json`` in the
  index directory (``codeindex.runstate``) whenever it changes, throttled, and marked
  ``running: false`` by ``stop()``.

Known limits: files reached only through a symlinked directory, and ``.git/info/exclude``
edits, are not watched (the next reconcile — start, overflow, ignore-file edit — picks
them up); a subtree that fell back to polling stays polled until the watcher restarts.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from codeindex import runstate
from codeindex.errors import (
    BadCursorError,
    CodeIndexError,
    IndexMissingError,
    LockBusyError,
    PathOutsideRootError,
)
from codeindex.pipeline import IndexReport, Progress
from codeindex.service import CodeIndex
from codeindex.watch.changes import Batch, ChangeQueue
from codeindex.watch.observers import Observers

# One logger for the whole package, named as before it was split: log lines keep reading
# "codeindex.watch: ...".
log = logging.getLogger("codeindex.watch")

__all__ = ["Watcher"]

_LOCK_RETRY_S = 0.25  # how often a batch retries while another process writes
_PUBLISH_EVERY_S = 0.5  # watcher.json is rewritten at most this often (unless forced)
_MAX_EVENT_PATHS = 100  # paths listed in one on_update event (path_count has the total)
_MAX_BACKOFF_S = 60.0
# Small updates skip compaction (it rewrites the chunks table: ~0.3 s at 20k files, most
# of a save-to-searchable budget). The worker compacts once the tree has been quiet for
# ``compact_after_idle`` seconds, after this many uncompacted updates in a row, and on a
# flushing stop, so fragments and old versions stay bounded.
_COMPACT_EVERY = 25


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


class Watcher:
    """Keeps one CodeIndex following its root's working tree (see the module docstring).

    ``on_update(event)`` is called from the worker thread after each applied update with a
    JSON-safe dict (``event``: "update"/"reconcile", ``paths`` (at most 100),
    ``path_count``, added/updated/deleted/unchanged, ``chunks_embedded``,
    ``chunks_reused``, ``seconds``, ``lag_seconds``, ``at``); exceptions it raises are
    logged and ignored. ``progress`` is passed to every ``CodeIndex.index`` call (its
    methods run while the writer lock is held). ``poll_interval`` is the polling
    observer's interval in seconds (fallback / ``use_polling``); ``compact_after_idle``
    how long the tree must be quiet before the index is compacted (see _COMPACT_EVERY).
    """

    def __init__(
        self,
        code_index: CodeIndex,
        *,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        use_polling: bool = False,
        progress: Progress | None = None,
        poll_interval: float = 1.0,
        compact_after_idle: float = 5.0,
    ) -> None:
        self.ci = code_index
        self.settings = code_index.settings
        self._on_update = on_update
        self._progress = progress
        self._compact_after_idle = compact_after_idle
        self._root = str(self.settings.root)
        self._limit = max(1, int(self.settings.event_queue_limit))

        self._observers = Observers(
            self.settings, use_polling=use_polling, poll_interval=poll_interval
        )

        # ---- pending state: guarded by _cond
        self._cond = threading.Condition()
        self._changes = ChangeQueue(
            self._limit, self.settings.debounce_ms / 1000.0, self.settings.max_debounce_ms / 1000.0
        )
        self._busy = False
        self._batch_first_at: float | None = None
        self._uncompacted = 0  # updates applied with compact=False since the last compaction
        self._last_applied_at = 0.0  # monotonic
        self._compacting = False
        self._waiting_for_lock: str | None = None
        self._running = False
        self._stop_requested = False
        self._closing = False  # observers are being stopped: no more (un)scheduling
        self._abort = threading.Event()  # stop(flush=False): interrupt the pipeline too
        # ---- statistics
        self._started_at: float | None = None
        self._updates_applied = 0
        self._reconciles = 0
        self._expand_overflows = 0  # batches whose directories held too many files
        self._last_update_at: float | None = None
        self._last_update: dict[str, Any] | None = None
        self._last_error: str | None = None
        self._published_at = 0.0
        self._published_pending = 0

        self._worker: threading.Thread | None = None

    # ================================================================ lifecycle
    def start(self) -> None:
        """Schedule the watches, then start the worker, which first runs a reconcile
        (full ``CodeIndex.index()``) and then applies debounced updates.

        Returns once the watches exist (the reconcile runs in the background; use
        ``wait_idle``). Raises CodeIndexError if already running.
        """
        with self._cond:
            if self._running or self._worker is not None:
                raise CodeIndexError("this watcher is already running; stop() it first.")
            self._running = True
            self._stop_requested = False
            self._closing = False
            self._abort.clear()
            self._started_at = time.time()
            # Queued before the watches exist: events from now on are covered by it.
            self._changes.request("startup")
        self.ci.watcher_status = self.status
        try:
            self._observers.start(self)
        except BaseException:
            with self._cond:
                self._running = False
            self._observers.stop()
            raise
        self._worker = threading.Thread(target=self._run, name="codeindex-watch", daemon=True)
        self._worker.start()
        self._publish()

    def stop(self, flush: bool = True) -> None:
        """Stop watching. ``flush=True`` applies every pending change first (waiting for
        the writer lock if another process holds it); ``flush=False`` drops pending
        changes and interrupts an update in flight (the next start's reconcile redoes
        it). Joins all threads it started. Idempotent."""
        with self._cond:
            if not self._running:
                return
            self._closing = True
        # Observers first, so every event they already read lands in the pending set.
        self._observers.stop()
        with self._cond:
            self._stop_requested = True
            if not flush:
                self._abort.set()
            self._cond.notify_all()
        worker = self._worker
        if worker is not None:
            worker.join()
        with self._cond:
            self._running = False
            self._worker = None
            self._cond.notify_all()
        self._publish()

    def abort(self) -> None:
        """Make a stop in progress (or the next one) drop pending work and interrupt the
        update in flight; safe to call from a signal handler."""
        self._abort.set()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(flush=True)

    # ================================================================ queries
    def status(self) -> dict[str, Any]:
        """A JSON-safe snapshot: running, pending (paths/directories queued),
        reconcile_pending (reason or None), updating, waiting_for_lock, last_update_at,
        last_update, lag_seconds (age of the oldest change not yet searchable),
        updates_applied, reconciles, overflows, events_seen, events_ignored, mode,
        polling_fallback (top-level directories polled, "." for the root), last_error."""
        with self._cond:
            now = time.monotonic()
            oldest = self._changes.first_at if self._changes.has_work() else None
            if self._busy and self._batch_first_at is not None:
                oldest = min(oldest or self._batch_first_at, self._batch_first_at)
            pending = self._changes.pending_count()
            out: dict[str, Any] = {
                "running": self._running,
                "pid": os.getpid(),
                "root": self._root,
                "mode": self._observers.mode,
                "layout": "root" if self._observers.root_layout else "per-directory",
                "pending": pending,
                "reconcile_pending": self._changes.reconcile,
                "updating": self._busy and not self._compacting,
                "compacting": self._compacting,
                "uncompacted_updates": self._uncompacted,
                "waiting_for_lock": self._waiting_for_lock,
                "last_update_at": _iso(self._last_update_at),
                "last_update": self._last_update,
                "lag_seconds": round(now - oldest, 3) if oldest is not None else 0.0,
                "oldest_pending_at": (
                    _iso(time.time() - (now - oldest)) if oldest is not None else None
                ),
                "updates_applied": self._updates_applied,
                "reconciles": self._reconciles,
                "overflows": self._changes.overflows + self._expand_overflows,
                "events_seen": self._observers.events_seen,
                "events_ignored": self._observers.events_ignored,
                "started_at": _iso(self._started_at),
                "last_error": self._last_error,
            }
        polling = dict(self._observers.polling)  # replaced wholesale, never mutated
        out["polling_fallback"] = sorted(u or "." for u in polling)
        out["polling_reasons"] = {(u or "."): why for u, why in sorted(polling.items())}
        if self._observers.native_error:
            out["native_error"] = self._observers.native_error
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending and no update is in flight; True if so within
        ``timeout`` seconds. Only events the observer has already delivered count: right
        after a write, use ``wait_for_update`` or poll the result you expect."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._changes.has_work() and not self._busy, timeout=timeout
            )

    def wait_for_update(self, after: int, timeout: float | None = None) -> bool:
        """Block until more than ``after`` updates have been applied (see
        ``status()["updates_applied"]``) or the watcher stopped; True if one was."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._updates_applied > after or not self._running, timeout=timeout
            )
            return self._updates_applied > after

    # ================================================================ the observers' sink
    def queue(self, **change: Any) -> None:
        """Record one change (the keywords of ``ChangeQueue.add``), now; from any thread."""
        with self._cond:
            if self._changes.add(time.monotonic(), **change):
                self._cond.notify_all()

    def take_fallback(self, name: str) -> bool:
        """``ChangeQueue.take_fallback``, under the lock (the observers' sink)."""
        with self._cond:
            return self._changes.take_fallback(name)

    def stopping(self) -> bool:
        """True once stop() began or before start(): watches stay as they are."""
        with self._cond:
            return self._closing or self._stop_requested or not self._running

    # ================================================================ worker
    def _take(self) -> Batch | None | str:
        """Wait for the next batch (holding _cond). None: exit. "publish": the pending
        count changed and watcher.json is due for a rewrite. "compact": compact now."""
        while True:
            now = time.monotonic()
            if self._stop_requested and (self._abort.is_set() or not self._changes.has_work()):
                if self._uncompacted and not self._abort.is_set():
                    return self._start_compaction()
                return None
            if self._uncompacted >= _COMPACT_EVERY:
                return self._start_compaction()
            if not self._changes.has_work():
                if self._uncompacted:
                    quiet_in = self._last_applied_at + self._compact_after_idle - now
                    if quiet_in <= 0:
                        return self._start_compaction()
                    self._cond.wait(quiet_in)
                else:
                    self._cond.wait()
                continue
            due = now if self._stop_requested else self._changes.due(now)
            if now >= due:
                break
            timeout = due - now
            if self._changes.pending_count() != self._published_pending:
                publish_in = self._published_at + _PUBLISH_EVERY_S - now
                if publish_in <= 0:
                    return "publish"
                timeout = min(timeout, publish_in)
            self._cond.wait(timeout)
        batch = self._changes.take()
        self._busy = True
        self._batch_first_at = batch.first_at
        return batch

    def _start_compaction(self) -> str:
        self._busy = self._compacting = True
        return "compact"

    def _compact(self) -> None:
        try:
            self.ci.compact(wait=False)
        except LockBusyError:
            pass  # another process is writing; its run compacts when it finishes
        except Exception:
            log.exception("watch: compaction failed")
        finally:
            with self._cond:
                self._uncompacted = 0  # also after a failure: no retry loop
                self._busy = self._compacting = False
                self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                batch = self._take()
            if batch is None:
                return
            if batch == "publish":
                self._publish()
                continue
            if batch == "compact":
                self._compact()
                continue
            assert isinstance(batch, Batch)
            try:
                self._apply(batch)
                backoff = 0.0
            except Exception as exc:
                log.exception("watch: update failed")
                with self._cond:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    if not self._stop_requested:
                        # Redo the lost batch as a reconcile, after a growing pause.
                        backoff = min(_MAX_BACKOFF_S, max(1.0, backoff * 2))
                        now = time.monotonic()
                        self._changes.retry(now, now + backoff, "retry after an error")
            finally:
                with self._cond:
                    self._busy = False
                    self._batch_first_at = None
                    self._waiting_for_lock = None
                    self._cond.notify_all()
            self._publish()  # at most once per applied batch

    def _apply(self, batch: Batch) -> None:
        if batch.rescope:
            self._observers.invalidate_ignores()
        scan: list[str] = []  # top-level directories newly watched: files may predate it
        if batch.units or batch.all_units or batch.rescope or batch.fallback_units:
            scan = self._observers.rewatch(
                batch.units,
                all_units=batch.all_units or batch.rescope,
                fallback=batch.fallback_units,
            )
        reason = batch.reconcile
        paths: list[str] | None = None
        if reason is None:
            paths = self._expand(batch.paths, batch.gone_dirs, scan)
            if paths is None:
                with self._cond:
                    self._expand_overflows += 1
                reason = f"directory changes touch more than {self._limit} files"
        if paths is not None and not paths:
            return
        if reason is None and paths is not None:
            root = self.settings.root
            present = [p for p in paths if os.path.lexists(root / p)]
            gone = [p for p in paths if not os.path.lexists(root / p)]
            # Existing paths first: a moved file's new path is written (reusing the
            # vectors of its old chunks, which still exist) before the old path goes.
            paths = sorted(present) + sorted(gone)
        try:
            report = self._index(paths, compact=paths is None)
        except PathOutsideRootError:
            # A changed path resolves (through a symlink) outside the root; only the
            # full walk records such links the way `codeindex index` does.
            reason = "a changed path resolves outside the root"
            paths = None
            report = self._index(None)
        if report is None or report.interrupted:
            return
        self._record(report, paths, reason, batch.first_at)

    def _index(self, paths: list[str] | None, compact: bool = True) -> IndexReport | None:
        """One CodeIndex.index call, retried while another process holds the writer
        lock (never blocking on it, so stop(flush=False) can interrupt the wait)."""
        announced = False
        while True:
            try:
                return self.ci.index(
                    paths, progress=self._progress, stop=self._abort, wait=False, compact=compact
                )
            except LockBusyError as exc:
                msg = str(exc).split(";")[0]
                if not announced:
                    announced = True
                    log.warning("watch: %s; waiting for it to finish…", msg)
                    with self._cond:
                        self._waiting_for_lock = msg
                    self._publish()
                with self._cond:
                    if self._abort.is_set():
                        return None
                    self._cond.wait(_LOCK_RETRY_S)
                    if self._abort.is_set():
                        return None

    def _expand(
        self, paths: list[str], gone_dirs: list[str], scan_dirs: list[str]
    ) -> list[str] | None:
        """The batch as file paths; None when it exceeds event_queue_limit (reconcile)."""
        out = dict.fromkeys(paths)
        # Only the outermost of nested directories needs expanding.
        for rel_dir in _outermost(gone_dirs):
            found = self._indexed_under(rel_dir)
            if found is None:
                return None
            out.update(dict.fromkeys(found))
            if len(out) > self._limit:
                return None
        for rel_dir in _outermost(scan_dirs):
            found = self._files_under(rel_dir, self._limit - len(out))
            if found is None:
                return None
            out.update(dict.fromkeys(found))
            if len(out) > self._limit:
                return None
        return list(out)

    def _indexed_under(self, rel_dir: str) -> list[str] | None:
        """Paths the index holds (indexed or skipped) under ``rel_dir``."""
        prefix = rel_dir + "/"
        found: list[str] = []
        for skipped in (False, True):
            cursor = ""
            while True:
                try:
                    res = self.ci.list_files(
                        page_size=500, cursor=cursor, glob=f"{rel_dir}/**", skipped=skipped
                    )
                except IndexMissingError:
                    return found
                except BadCursorError:
                    return None  # the index moved on under us: let a reconcile decide
                found.extend(f.path for f in res.files if f.path.startswith(prefix))
                if len(found) > self._limit:
                    return None
                cursor = res.next_cursor or ""
                if not cursor:
                    break
        return found

    def _files_under(self, rel_dir: str, budget: int) -> list[str] | None:
        """Files on disk under ``rel_dir``, ignored subtrees pruned (symlinked
        directories are not entered). None when more than ``budget``."""
        found: list[str] = []
        stack = [rel_dir]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(os.path.join(self._root, d))
            except OSError:
                continue
            with it:
                for entry in it:
                    rel = f"{d}/{entry.name}"
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    if self._observers.ignored(rel, is_dir):
                        continue
                    if is_dir:
                        stack.append(rel)
                        continue
                    found.append(rel)
                    if len(found) > budget:
                        return None
        return found

    def _record(
        self,
        report: IndexReport,
        paths: list[str] | None,
        reason: str | None,
        first_at: float | None,
    ) -> None:
        now = time.time()
        lag = time.monotonic() - first_at if first_at is not None else None
        event: dict[str, Any] = {
            "event": "reconcile" if paths is None else "update",
            "at": _iso(now),
            "paths": (paths or [])[:_MAX_EVENT_PATHS],
            "path_count": len(paths) if paths is not None else None,
            "added": report.added,
            "updated": report.updated,
            "deleted": report.deleted,
            "unchanged": report.unchanged,
            "failed": len(report.failed),
            "chunks_embedded": report.chunks_embedded,
            "chunks_reused": report.chunks_reused,
            "seconds": round(report.seconds, 3),
            "lag_seconds": round(lag, 3) if lag is not None else None,
        }
        if paths is None:
            event["reason"] = reason
        with self._cond:
            self._updates_applied += 1
            self._last_applied_at = time.monotonic()
            if paths is None:
                self._reconciles += 1
                self._uncompacted = 0  # a reconcile compacts at its end
            elif report.changed:
                self._uncompacted += 1
            self._last_update_at = now
            self._last_update = {k: v for k, v in event.items() if k != "paths"}
            self._last_error = None
            self._cond.notify_all()
        if self._on_update is not None:
            try:
                self._on_update(event)
            except Exception:
                log.exception("watch: on_update callback failed")

    # ================================================================ publishing
    def _publish(self) -> None:
        """Write status() to watcher.json (atomically) for other processes. Called on
        start/stop, once per applied batch, when waiting for the lock, and (throttled to
        _PUBLISH_EVERY_S by _take) when the pending count changes."""
        now = time.monotonic()
        state = self.status()
        with self._cond:
            self._published_at = now
            self._published_pending = self._changes.pending_count()
        try:
            runstate.write_state(self.settings.index_dir, runstate.WATCHER_FILE, state)
        except OSError as exc:
            log.debug("watch: cannot write %s: %s", runstate.WATCHER_FILE, exc)


def _outermost(dirs: list[str]) -> list[str]:
    """Drop directories nested in another one of the list."""
    out: list[str] = []
    for d in sorted(set(dirs)):
        if not out or not (d == out[-1] or d.startswith(out[-1] + "/")):
            out.append(d)
    return out
