"""The observers: which directories are watched, how, and what their events mean.

``Observers`` owns watchdog's observers (native from ``inotify.py``, or polling through
a ``listdir`` that prunes ignored entries) and the scheduled watches, and turns each
event into a change for the worker's queue (through a ``ChangeSink``).

* **What is watched.** The root itself (not recursively) plus one recursive watch per
  top-level directory that is not ignored. Ignored top-level directories (``.git``,
  ``node_modules``, ``.venv``, the index directory ...) get no watch at all, so they cost
  no inotify watches and produce no events. Deeper ignored paths are dropped per event,
  before anything is queued. Top-level directories that appear, vanish or move are
  (un)scheduled by the worker (``rewatch``), and a new one is returned for a scan of
  files created before its watch existed. watchdog runs a thread per watch, so with
  more than ``_MAX_DIR_WATCHES`` top-level directories the root becomes one recursive
  watch (``layout`` "root"; kept until restart) and ignored paths are dropped per event.
* **Native first, polling as a fallback.** The native observer (inotify on Linux) is
  used unless ``use_polling``; when the kernel runs out of inotify watches or instances
  (ENOSPC / EMFILE, "inotify watch limit reached") for a top-level subtree — also while
  watchdog adds watches for subdirectories, which it would otherwise swallow silently —
  that subtree is polled instead (its ignored entries pruned) and rescanned once;
  ``polling`` names it. A kernel event-queue overflow (IN_Q_OVERFLOW) queues a reconcile.
* **Ignore files.** A change to a ``.gitignore`` / ``.codeindexignore`` queues a rescope:
  the worker calls ``invalidate_ignores`` and ``rewatch`` with every unit, then
  reconciles, so newly ignored files leave the index and newly un-ignored ones enter it.

Threads: events arrive on watchdog's dispatch threads; ``start``, ``stop`` and
``rewatch`` run on the watcher's threads, serialised by one lock here. The ignore
matcher is shared by all of them behind its own lock (``IgnoreMatcher`` is not
thread-safe).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserverVFS

from codeindex import discovery
from codeindex.config import Settings
from codeindex.watch.inotify import EXHAUSTED, native_observer

# One logger for the package, named as before it was split: log lines keep reading
# "codeindex.watch: ...".
log = logging.getLogger("codeindex.watch")

# watchdog runs one emitter thread per watch: beyond this many top-level directories the
# root is watched as ONE recursive watch instead (ignored directories then cost inotify
# watches and produce events that are dropped one by one, but threads stay few).
_MAX_DIR_WATCHES = 64
_ROOT_UNIT = ""  # the root directory itself, watched non-recursively
# The events asked of the kernel. Not opens, nor closes without a write: indexing opens
# every file it sniffs, and a reconcile of a big tree would otherwise flood (and overflow)
# the inotify queue with its own reads — and each overflow means another reconcile.
_EVENT_FILTER = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class ChangeSink(Protocol):
    """Where ``Observers`` sends what it sees (the watcher, holding its queue's lock)."""

    def queue(self, **change: Any) -> None:
        """Record one change: the keywords of ``ChangeQueue.add``."""

    def take_fallback(self, name: str) -> bool:
        """``ChangeQueue.take_fallback``: forget a pending native-watch failure."""

    def stopping(self) -> bool:
        """True once the watcher is stopping: no more watches are (un)scheduled."""


class _Handler(FileSystemEventHandler):
    """Forwards every event to ``Observers``. Runs in the observers' dispatch threads."""

    def __init__(self, observers: Observers) -> None:
        self._observers = observers

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._observers._on_event(event)
        except Exception:  # never kill watchdog's dispatch thread
            log.exception("watch: failed to handle %r", event)


@dataclass
class _Unit:
    """One scheduled watch: the root (non-recursive) or a top-level directory."""

    observer: BaseObserver
    watch: ObservedWatch
    polling: bool
    inode: tuple[int, int] | None


class Observers:
    """The watches of one root (see the module docstring). ``start(sink)`` schedules
    them; until ``stop()`` every event becomes a ``sink.queue(...)`` call.
    ``poll_interval`` is the polling observer's interval in seconds."""

    def __init__(self, settings: Settings, *, use_polling: bool, poll_interval: float) -> None:
        self._use_polling = use_polling
        self._poll_interval = poll_interval
        self._root = str(settings.root)
        self._root_prefix = self._root.rstrip(os.sep) + os.sep
        self._handler = _Handler(self)
        self._sink: ChangeSink | None = None
        # One matcher for event filtering, polling and unit decisions (IgnoreMatcher is
        # not thread-safe, and observer threads, pollers and the worker all use it).
        self._matcher = discovery.IgnoreMatcher(settings)
        self._matcher_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self.events_seen = 0  # events that could carry a change (+= under _counts_lock)
        self.events_ignored = 0  # of those, the ones under ignored paths
        # ---- touched by start/stop and the worker only, under _units_lock
        self._units_lock = threading.Lock()
        self._units: dict[str, _Unit] = {}
        self.polling: dict[str, str] = {}  # unit -> why it is polled; replaced, not mutated
        self.root_layout = False  # one recursive watch on the root (see _MAX_DIR_WATCHES)
        self.native: BaseObserver | None = None
        self.native_fd: Any = None  # watchdog's InotifyFD (tests use it to inject events)
        self._poller: BaseObserver | None = None
        self.native_error: str | None = None  # why native watching is unavailable

    @property
    def mode(self) -> str:
        """Either "polling" (native events asked off, or unavailable) or "native"."""
        return "polling" if self._use_polling or self.native_error else "native"

    # ================================================================ lifecycle
    def start(self, sink: ChangeSink) -> None:
        """Start the observers and schedule the root and its top-level directories.
        Events go to ``sink`` from now on. On an exception the caller calls ``stop()``."""
        self._sink = sink
        self.polling, self.native_error = {}, None  # re-decided for this run
        self.root_layout = False
        with self._units_lock:
            self._start_observers()
            self._sync_units(set(), all_units=True)

    def stop(self) -> None:
        """Stop and join every observer thread. Events already read have been queued
        when this returns."""
        with self._units_lock:
            self._stop_observers()

    def rewatch(self, units: dict[str, bool], *, all_units: bool, fallback: set[str]) -> list[str]:
        """From the worker: follow top-level directories that changed (``units``: name ->
        force a new watch; every one when ``all_units``) and poll the subtrees in
        ``fallback`` (native watches ran out). Returns the top-level directories newly
        watched or switched to polling: their files may have changed unseen (scan them)."""
        with self._units_lock:
            scan = self._sync_units(units, all_units=all_units)
            scan += self._fall_back(fallback)
        return scan

    def invalidate_ignores(self) -> None:
        """Forget the cached ignore files (one of them changed)."""
        with self._matcher_lock:
            self._matcher.invalidate()

    # ================================================================ events
    def _rel(self, path: str | bytes) -> str | None:
        p = os.fsdecode(path)
        if p == self._root:
            return ""
        if not p.startswith(self._root_prefix):
            return None
        return p[len(self._root_prefix) :].replace(os.sep, "/")

    def _ignored(self, rel: str, is_dir: bool) -> bool:
        with self._matcher_lock:
            return self._matcher.is_ignored(rel, is_dir)

    def _on_event(self, event: FileSystemEvent) -> None:
        """Classify one watchdog event and queue what it means. O(path depth); no I/O
        beyond ignore files the matcher has not cached yet."""
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        is_dir = event.is_directory
        if is_dir and kind in ("modified", "attrib", "closed"):
            return  # a directory's own metadata carries no content
        with self._counts_lock:
            self.events_seen += 1
        roles = [("src", event.src_path)]
        if kind == "moved" and event.dest_path:
            roles = [("src", event.src_path), ("dest", event.dest_path)]
        for role, raw in roles:
            rel = self._rel(raw)
            if not rel:
                continue  # outside the root, or the root itself
            name = rel.rpartition("/")[2]
            parent = rel.rpartition("/")[0]
            if (
                not is_dir
                and name in discovery.IGNORE_FILENAMES
                and not (parent and self._ignored(parent, True))
            ):
                self._queue(rescope=True)
                continue
            if self._ignored(rel, is_dir):
                with self._counts_lock:
                    self.events_ignored += 1
                continue
            gone = kind == "deleted" or (kind == "moved" and role == "src")
            if not is_dir:
                self._queue(path=rel)
            elif "/" not in rel and not self.root_layout:
                # A top-level directory: its watch must follow it. A new one is scanned
                # once watched (see _sync_units): files may predate its watch.
                self._queue(unit=(rel, gone), gone_dir=rel if gone else None)
            elif gone:
                # Moved out of the tree or removed: files under it may get no event.
                self._queue(gone_dir=rel)
            # A directory created or moved in below a top-level one needs nothing here:
            # watchdog reports its files (recursive inotify / polling snapshot diff).

    def _on_watch_limit(self, path: bytes) -> None:
        """From the inotify tap (any thread): a watch could not be added under ``path``."""
        rel = self._rel(path)
        if rel is None:
            return
        log.warning("watch: inotify watch limit reached at %s", os.fsdecode(path))
        self._queue(fallback_unit=_ROOT_UNIT if self.root_layout else rel.partition("/")[0])

    def _on_kernel_overflow(self) -> None:
        log.warning("watch: the kernel's inotify event queue overflowed; reconciling")
        self._queue(reconcile="inotify event queue overflowed (events were lost)")

    # ================================================================ watches
    def _start_observers(self) -> None:
        if self._use_polling:
            return
        try:
            self.native, self.native_fd = native_observer(
                self._on_watch_limit, self._on_kernel_overflow
            )
            self.native.start()
        except OSError as exc:
            self.native, self.native_fd = None, None
            self.native_error = f"native file watching unavailable ({exc}); polling"
            log.warning("watch: %s", self.native_error)

    def _ensure_poller(self) -> BaseObserver:
        if self._poller is None:
            self._poller = PollingObserverVFS(
                os.lstat, self._poll_listdir, polling_interval=self._poll_interval
            )
            self._poller.start()
        return self._poller

    def _poll_listdir(self, path: str | None) -> Any:
        """os.scandir for the polling observer, with ignored entries pruned so polling
        never walks node_modules and friends."""
        base = self._rel(path or self._root) or ""
        kept = []
        with os.scandir(path) as it:
            for entry in it:
                rel = f"{base}/{entry.name}" if base else entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if not self._ignored(rel, is_dir):
                    kept.append(entry)
        return iter(kept)

    def _stop_observers(self) -> None:
        for obs in (self.native, self._poller):
            if obs is None:
                continue
            with contextlib.suppress(Exception):
                obs.stop()
            with contextlib.suppress(RuntimeError):
                obs.join(timeout=10)
        self.native = self._poller = None
        self.native_fd = None
        self._units.clear()

    def _unit_wanted(self, name: str) -> tuple[bool, tuple[int, int] | None]:
        if name == _ROOT_UNIT:
            return True, None
        try:
            st = os.lstat(os.path.join(self._root, name))
        except OSError:
            return False, None
        if not stat.S_ISDIR(st.st_mode) or self._ignored(name, True):
            return False, None
        return True, (st.st_dev, st.st_ino)

    def _sync_units(self, changes: dict[str, bool] | set[str], all_units: bool) -> list[str]:
        """(Un)schedule watches so that exactly the root and the non-ignored top-level
        directories are watched. Returns top-level directories newly watched (to scan).
        Call with _units_lock held (and never with the sink's lock: observer locks)."""
        if self._stopping():
            return []
        if self.root_layout:
            if _ROOT_UNIT not in self._units:
                self._watch(_ROOT_UNIT, None)
            return []
        names = dict.fromkeys(changes, False) if isinstance(changes, set) else dict(changes)
        if all_units:
            names.setdefault(_ROOT_UNIT, False)
            with contextlib.suppress(OSError), os.scandir(self._root) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        names.setdefault(entry.name, False)
            for name in list(self._units):
                names.setdefault(name, False)
        decisions = {name: self._unit_wanted(name) for name in names}
        dirs = {n for n in self._units if n} | {n for n, (w, _) in decisions.items() if w and n}
        dirs -= {n for n, (w, _) in decisions.items() if not w}
        if len(dirs) > _MAX_DIR_WATCHES:
            return self._switch_to_root_layout(len(dirs))
        added = []
        for name, force in sorted(names.items()):
            want, inode = decisions[name]
            have = self._units.get(name)
            if have is not None and (force or not want or have.inode != inode):
                self._unwatch(name)
                have = None
            if want and have is None:
                self._watch(name, inode)
                if name != _ROOT_UNIT:
                    added.append(name)
        return added

    def _switch_to_root_layout(self, count: int) -> list[str]:
        log.info("watch: %d top-level directories; watching the root recursively", count)
        for name in list(self._units):
            self._unwatch(name)
        self.polling = {}
        self.root_layout = True
        self._watch(_ROOT_UNIT, None)
        # Changes while the watches were swapped may be missed (at start this merges
        # into the startup reconcile).
        self._queue(reconcile=f"{count} top-level directories: now one recursive watch")
        return []

    def _watch(self, name: str, inode: tuple[int, int] | None) -> None:
        path = os.path.join(self._root, name) if name else self._root
        recursive = name != _ROOT_UNIT or self.root_layout
        if self.native is not None and name not in self.polling:
            self._take_fallback(name)
            try:
                watch = self.native.schedule(
                    self._handler, path, recursive=recursive, event_filter=_EVENT_FILTER
                )
            except OSError as exc:
                if exc.errno not in EXHAUSTED:
                    if not os.path.isdir(path):
                        return  # vanished meanwhile; its parent's event will follow
                    raise
                self._mark_polling(name, f"inotify: {exc.strerror or exc}")
            else:
                hit = self._take_fallback(name)
                if not hit:
                    self._units[name] = _Unit(self.native, watch, False, inode)
                    return
                # Some subdirectory could not get a watch: poll the whole subtree.
                with contextlib.suppress(Exception):
                    self.native.unschedule(watch)
                self._mark_polling(name, "inotify watch limit reached")
        try:
            watch = self._ensure_poller().schedule(
                self._handler, path, recursive=recursive, event_filter=_EVENT_FILTER
            )
        except (FileNotFoundError, NotADirectoryError):
            return
        self._units[name] = _Unit(self._poller, watch, True, inode)  # type: ignore[arg-type]

    def _mark_polling(self, name: str, why: str) -> None:
        log.warning("watch: polling %s instead of native events (%s)", name or ".", why)
        self.polling = {**self.polling, name: why}

    def _unwatch(self, name: str) -> None:
        unit = self._units.pop(name, None)
        if unit is None:
            return
        with contextlib.suppress(Exception):  # its emitter may already have stopped itself
            unit.observer.unschedule(unit.watch)
        if name in self.polling and name != _ROOT_UNIT:
            self.polling = {k: v for k, v in self.polling.items() if k != name}

    def _fall_back(self, names: set[str]) -> list[str]:
        """Replace the native watches of ``names`` by polling ones; returns the units
        to rescan (changes may have been missed while they were unwatched)."""
        if self._stopping():
            return []
        rescan = []
        for name in sorted(names):
            unit = self._units.get(name)
            if unit is None or unit.polling:
                continue
            self._unwatch(name)
            self._mark_polling(name, "inotify watch limit reached")
            self._watch(name, unit.inode)
            if name == _ROOT_UNIT:  # the root: rescanning means a reconcile
                self._queue(reconcile="the root switched to polling")
            else:
                rescan.append(name)
        return rescan

    # ================================================================ the sink
    def _queue(self, **change: Any) -> None:
        assert self._sink is not None, "start() first"
        self._sink.queue(**change)

    def _take_fallback(self, name: str) -> bool:
        assert self._sink is not None, "start() first"
        return self._sink.take_fallback(name)

    def _stopping(self) -> bool:
        return self._sink is None or self._sink.stopping()
