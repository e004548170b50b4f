"""``Watcher``: keep one CodeIndex following its root's working tree.

The public face of the package: it wires the observers (``observers.py``) to the worker
(``worker.py``), which owns the change queue (``changes.py``), and orders their start
and stop.

* **Startup.** ``start()`` queues a reconcile pass (a full ``CodeIndex.index()``) first,
  then schedules the watches, then starts the worker thread, which runs the reconcile
  at once: changes made while nothing was watching are picked up and nothing that
  changes during the pass is missed (the watches already exist). ``start()`` returns as
  soon as the watches are in place; ``wait_idle()`` waits for the reconcile to finish.
* **Stop.** The observers stop first, so every event they already read is queued; then
  the worker applies what is pending (``flush=True``) or drops it and interrupts the
  update in flight (``flush=False`` or ``abort()``; the next start's reconcile redoes
  it), compacts after a flushing stop, and ``watcher.json`` is marked ``running: false``.
* **Status.** ``status()`` for in-process callers (``start()`` installs it as
  ``CodeIndex.watcher_status``); the same dict is published to ``watcher.json`` in the
  index directory for other processes (``codeindex status``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codeindex.service import CodeIndex
from codeindex.types import Progress
from codeindex.watch.observers import Observers
from codeindex.watch.worker import Worker

__all__ = ["Watcher"]


class Watcher:
    """Keeps one CodeIndex following its root's working tree (see the module docstring).

    ``on_update(event)`` is called from the worker thread after each applied update with a
    JSON-safe dict (``event``: "update"/"reconcile", ``paths`` (at most 100),
    ``path_count``, added/updated/deleted/unchanged, ``chunks_embedded``,
    ``chunks_reused``, ``seconds``, ``lag_seconds``, ``at``); exceptions it raises are
    logged and ignored. ``progress`` is passed to every ``CodeIndex.index`` call (its
    methods run while the writer lock is held). ``poll_interval`` is the polling
    observer's interval in seconds (fallback / ``use_polling``); ``compact_after_idle``
    how long the tree must be quiet before the index is compacted (see
    ``worker._COMPACT_EVERY``).
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
        self._observers = Observers(
            self.settings, use_polling=use_polling, poll_interval=poll_interval
        )
        self._worker = Worker(
            code_index,
            self._observers,
            on_update=on_update,
            progress=progress,
            compact_after_idle=compact_after_idle,
        )

    def start(self) -> None:
        """Schedule the watches, then start the worker, which first runs a reconcile
        (full ``CodeIndex.index()``) and then applies debounced updates.

        Returns once the watches exist (the reconcile runs in the background; use
        ``wait_idle``). Raises CodeIndexError if already running.
        """
        self._worker.begin()
        self.ci.watcher_status = self.status
        try:
            self._observers.start(self._worker)
        except BaseException:
            self._worker.abandon()
            self._observers.stop()
            raise
        self._worker.run()

    def stop(self, flush: bool = True) -> None:
        """Stop watching. ``flush=True`` applies every pending change first (waiting for
        the writer lock if another process holds it); ``flush=False`` drops pending
        changes and interrupts an update in flight (the next start's reconcile redoes
        it). Joins all threads it started. Idempotent."""
        if not self._worker.close():
            return
        # Observers first, so every event they already read lands in the pending set.
        self._observers.stop()
        self._worker.finish(flush)

    def abort(self) -> None:
        """Make a stop in progress (or the next one) drop pending work and interrupt the
        update in flight; safe to call from a signal handler."""
        self._worker.abort()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(flush=True)

    def status(self) -> dict[str, Any]:
        """A JSON-safe snapshot: running, pending (paths/directories queued),
        reconcile_pending (reason or None), updating, waiting_for_lock, last_update_at,
        last_update, lag_seconds (age of the oldest change not yet searchable),
        updates_applied, reconciles, overflows, events_seen, events_ignored, mode,
        polling_fallback (top-level directories polled, "." for the root), last_error."""
        return self._worker.status()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending and no update is in flight; True if so within
        ``timeout`` seconds. Only events the observer has already delivered count: right
        after a write, use ``wait_for_update`` or poll the result you expect."""
        return self._worker.wait_idle(timeout)

    def wait_for_update(self, after: int, timeout: float | None = None) -> bool:
        """Block until more than ``after`` updates have been applied (see
        ``status()["updates_applied"]``) or the watcher stopped; True if one was."""
        return self._worker.wait_for_update(after, timeout)
