"""The worker: the one thread that applies batches to the index, and publishes status.

The worker waits on its condition for the ``ChangeQueue`` (``changes.py``) to have a
batch due, takes it and applies it as one ``CodeIndex.index`` call; the observers feed
the queue through the worker's ``queue`` / ``take_fallback`` / ``stopping`` (it is their
``ChangeSink``). Everything the condition guards lives here: the queue, the lifecycle
flags, the statistics that ``status()`` reports.

* **One batch, one index call.** A batch is one ``CodeIndex.index(paths=...)``: its
  directories are expanded to file paths (``expand.py``), and existing paths are listed
  before vanished ones so that in a rename/move the new path is written (reusing the
  stored vectors of identical chunks) before the old path's chunks are deleted — a pure
  move embeds nothing. A batch whose expansion passes
  ``settings.event_queue_limit`` paths, or any reconcile request, is a full
  ``CodeIndex.index()`` instead (it streams). A failed batch is redone as a reconcile
  after a growing pause (at most ``_MAX_BACKOFF_S``).
* **Compaction off the critical path.** Updates are applied with ``compact=False``: new
  rows are searchable at once (unindexed rows are scanned), and compaction, which
  rewrites the chunks table, runs when the tree has been quiet for
  ``compact_after_idle`` seconds, after ``_COMPACT_EVERY`` updates in a row, and on a
  flushing stop — so versions and fragments stay bounded without taxing every save.
* **One writer.** The writer lock is taken per update (never held while idle), so a
  ``codeindex index`` in another process can interleave; while another process holds it
  the worker retries (``status()["waiting_for_lock"]`` says so) and events keep coalescing.
* **Status.** ``status()`` is published to ``watcher.json`` in the index directory
  (``codeindex.runstate``) on start and stop, once per applied batch, while waiting for
  the writer lock and, at most every ``_PUBLISH_EVERY_S``, when the pending count changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from codeindex import runstate
from codeindex.errors import (
    CodeIndexError,
    LockBusyError,
    PathOutsideRootError,
)
from codeindex.service import CodeIndex
from codeindex.types import IndexReport, Progress, utc_iso
from codeindex.watch.changes import Batch, ChangeQueue
from codeindex.watch.expand import expand
from codeindex.watch.observers import Observers

# One logger for the package, named as before it was split: log lines keep reading
# "codeindex.watch: ...".
log = logging.getLogger("codeindex.watch")

_LOCK_RETRY_S = 0.25  # how often a batch retries while another process writes
_PUBLISH_EVERY_S = 0.5  # watcher.json is rewritten at most this often (unless forced)
_MAX_EVENT_PATHS = 100  # paths listed in one on_update event (path_count has the total)
_MAX_BACKOFF_S = 60.0
# Small updates skip compaction (it rewrites the chunks table: ~0.3 s at 20k files, most
# of a save-to-searchable budget). The worker compacts once the tree has been quiet for
# ``compact_after_idle`` seconds, after this many uncompacted updates in a row, and on a
# flushing stop, so fragments and old versions stay bounded.
_COMPACT_EVERY = 25


class Worker:
    """Applies the batches of one CodeIndex's watcher on one thread (module docstring).

    ``Watcher`` drives it: ``begin()``, then ``observers.start(worker)``, then
    ``run()``; to stop, ``close()``, ``observers.stop()``, then ``finish(flush)``.
    ``on_update``, ``progress`` and ``compact_after_idle`` are as ``Watcher`` documents.
    """

    def __init__(
        self,
        code_index: CodeIndex,
        observers: Observers,
        *,
        on_update: Callable[[dict[str, Any]], None] | None,
        progress: Progress | None,
        compact_after_idle: float,
    ) -> None:
        self.ci = code_index
        self.settings = code_index.settings
        self._observers = observers
        self._on_update = on_update
        self._progress = progress
        self._compact_after_idle = compact_after_idle
        self._root = str(self.settings.root)
        self._limit = max(1, int(self.settings.event_queue_limit))

        # ---- everything below is guarded by _cond
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

        self._thread: threading.Thread | None = None

    # ================================================================ lifecycle
    def begin(self) -> None:
        """Mark the watcher running and queue the startup reconcile, before any watch
        exists: events from then on are covered by it. Raises CodeIndexError if already
        running."""
        with self._cond:
            if self._running or self._thread is not None:
                raise CodeIndexError("this watcher is already running; stop() it first.")
            self._running = True
            self._stop_requested = False
            self._closing = False
            self._abort.clear()
            self._started_at = time.time()
            self._changes.request("startup")

    def abandon(self) -> None:
        """Undo ``begin()`` when the watches could not be set up (no thread started)."""
        with self._cond:
            self._running = False

    def run(self) -> None:
        """Start the worker thread (it runs the startup reconcile first)."""
        self._thread = threading.Thread(target=self._run, name="codeindex-watch", daemon=True)
        self._thread.start()
        self._publish()

    def close(self) -> bool:
        """First step of a stop: the observers may no longer (un)schedule watches.
        False when not running (nothing to stop)."""
        with self._cond:
            if not self._running:
                return False
            self._closing = True
            return True

    def finish(self, flush: bool) -> None:
        """Last step of a stop, once the observers have stopped (every event they read
        is queued): apply what is pending (``flush``) or drop it and interrupt the
        update in flight, then join the thread."""
        with self._cond:
            self._stop_requested = True
            if not flush:
                self._abort.set()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            self._running = False
            self._thread = None
            self._cond.notify_all()
        self._publish()

    def abort(self) -> None:
        """Make a stop in progress (or the next one) drop pending work and interrupt the
        update in flight; safe to call from a signal handler."""
        self._abort.set()
        with self._cond:
            self._cond.notify_all()

    # ================================================================ queries
    def status(self) -> dict[str, Any]:
        """``Watcher.status()`` (its keys are documented there)."""
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
                "last_update_at": utc_iso(self._last_update_at),
                "last_update": self._last_update,
                "lag_seconds": round(now - oldest, 3) if oldest is not None else 0.0,
                "oldest_pending_at": (
                    utc_iso(time.time() - (now - oldest)) if oldest is not None else None
                ),
                "updates_applied": self._updates_applied,
                "reconciles": self._reconciles,
                "overflows": self._changes.overflows + self._expand_overflows,
                "events_seen": self._observers.events_seen,
                "events_ignored": self._observers.events_ignored,
                "started_at": utc_iso(self._started_at),
                "last_error": self._last_error,
            }
        polling = dict(self._observers.polling)  # replaced wholesale, never mutated
        out["polling_fallback"] = sorted(u or "." for u in polling)
        out["polling_reasons"] = {(u or "."): why for u, why in sorted(polling.items())}
        if self._observers.native_error:
            out["native_error"] = self._observers.native_error
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """``Watcher.wait_idle()``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._changes.has_work() and not self._busy, timeout=timeout
            )

    def wait_for_update(self, after: int, timeout: float | None = None) -> bool:
        """``Watcher.wait_for_update()``."""
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

    # ================================================================ the loop
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
            paths = expand(self.ci, batch.paths, batch.gone_dirs, scan, self._limit)
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
            "at": utc_iso(now),
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
