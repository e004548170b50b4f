"""Watch mode: keep one index following its root's working tree.

    watchdog events ─▶ filter (IgnoreMatcher) ─▶ coalesce per path (bounded dict)
        ─▶ debounce ─▶ ONE worker thread ─▶ CodeIndex.index(paths=...) under the writer lock

Modules, one job each (callers import from ``codeindex.watch`` only):

* ``watcher.py``: ``Watcher``, the public face: start, stop, status, waits.
* ``observers.py``: which directories are watched (the root and each non-ignored
  top-level directory), native events or polling, and what an event means.
* ``inotify.py``: the tap in front of watchdog's inotify fd that reports watch
  exhaustion and kernel queue overflows (the only code that knows watchdog's internals).
* ``changes.py``: ``ChangeQueue``, the pending changes: coalescing, debounce,
  max-debounce, overflow to one reconcile. Pure: no threads, no I/O, time passed in.
* ``worker.py``: the one thread that applies batches through ``CodeIndex.index``,
  compacts when the tree is quiet, and publishes status to ``watcher.json``.
* ``expand.py``: a batch's directories as file paths (the index's listing under a
  vanished directory, discovery's walk under a newly watched one).

The contracts are stated in each module's docstring. Known limits: files reached only
through a symlinked directory, and ``.git/info/exclude`` edits, are not watched (the next
reconcile — start, overflow, ignore-file edit — picks them up); a subtree that fell back
to polling stays polled until the watcher restarts.
"""

from codeindex.watch.watcher import Watcher

__all__ = ["Watcher"]
