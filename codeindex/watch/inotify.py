"""watchdog's inotify observer with a tap between its watch groups and the kernel.

watchdog (7.x) hides two things a watcher must know: a subdirectory that could not get
a watch (it swallows the OSError, leaving that directory silently unwatched) and a
kernel event-queue overflow (it rebuilds its watches but reports no event for the
changes that were lost). ``native_observer()`` builds the platform's native observer;
on Linux an inotify one whose emitters talk to the kernel through ``_InotifyTap``,
which reports both. Everything else is delegated unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from watchdog.observers.api import BaseObserver

# Kernel resource errors that mean "no more native watches here": poll instead.
EXHAUSTED = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)


class _ShutdownNoise(logging.Filter):
    """watchdog 7 logs an ERROR when an event is read while its emitter is being
    stopped (a benign race); on Ctrl-C that reads like a failure, so drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in str(record.msg)


logging.getLogger("watchdog.observers.inotify").addFilter(_ShutdownNoise())


def _quiet_reregistration() -> None:
    """Drop watchdog's warning about a directory registered twice.

    When a directory is created inside a recursively watched one, watchdog adds a watch
    for it and lists it to watch its subdirectories. A subdirectory created in between
    (``mkdir -p a/b``) is registered by that listing and again by its own IN_CREATE
    event, which the kernel reports because its parent is already watched. The second
    registration puts the same callback back (the watch group's one tap), so nothing
    changes, but watchdog warns "Callback with id ... already exists for watch ... It
    will be Overwritten." — intermittently, by timing. watchdog attributes the warning
    to its caller, ``_InotifyTap.add_callback``, so only warnings from this module are
    dropped. Installed per observer rather than at import: test runners and
    ``warnings.catch_warnings`` put back the filter list they started with.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"Callback with id .* already exists for watch",
        category=RuntimeWarning,
        module=re.escape(__name__) + r"\Z",
    )


class _CallbackTap:
    """Wraps one watchdog inotify watch group to hear about kernel queue overflows
    (watchdog rebuilds its watches but reports no event for the changes it lost)."""

    def __init__(self, inner: Any, on_overflow: Callable[[], None]) -> None:
        self._inner = inner
        self._on_overflow = on_overflow

    def on_event(self, event: Any) -> None:
        self._inner.on_event(event)

    def on_watch_deleted(self, wd: Any) -> None:
        self._inner.on_watch_deleted(wd)

    def on_queue_overflow(self) -> None:
        self._on_overflow()
        self._inner.on_queue_overflow()


class _InotifyTap:
    """Stands in for watchdog's ``InotifyFD`` in front of its watch groups.

    watchdog (7.x) swallows the OSError when it cannot add a watch for a subdirectory,
    which would silently leave that directory unwatched; this records the failure so the
    watcher can poll that subtree instead. Everything else is delegated unchanged.
    """

    def __init__(
        self,
        fd: Any,
        on_exhausted: Callable[[bytes], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self._fd = fd
        self._on_exhausted = on_exhausted
        self._on_overflow = on_overflow
        # One tap per watch group (watchdog de-duplicates overflow callbacks by identity).
        self._taps: weakref.WeakValueDictionary[int, _CallbackTap] = weakref.WeakValueDictionary()

    def add_callback(self, path: bytes, mask: Any, callback: Any, id_: Any) -> Any:
        tap = self._taps.get(id(callback))
        if tap is None or tap._inner is not callback:
            tap = _CallbackTap(callback, self._on_overflow)
            self._taps[id(callback)] = tap
        try:
            return self._fd.add_callback(path, mask, tap, id_)
        except OSError as exc:
            if exc.errno in EXHAUSTED:
                self._on_exhausted(path)
            raise

    def remove_callbacks(self, callbacks: Any) -> None:
        self._fd.remove_callbacks(callbacks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fd, name)


def native_observer(
    on_exhausted: Callable[[bytes], None], on_overflow: Callable[[], None]
) -> tuple[BaseObserver, Any]:
    """The platform's native observer; on Linux an inotify observer behind _InotifyTap.

    Returns (observer, the real InotifyFD or None). Raises OSError when the kernel has
    no inotify instance left.
    """
    try:
        from watchdog.observers.inotify import InotifyEmitter
        from watchdog.observers.inotify_c import InotifyFD
    except (ImportError, OSError, AttributeError):  # not Linux, or another watchdog layout
        from watchdog.observers import Observer

        return Observer(), None

    _quiet_reregistration()  # idempotent: filterwarnings replaces an equal filter
    fd = InotifyFD()  # OSError(EMFILE) when the instance limit is reached

    class _TappedInotifyObserver(BaseObserver):
        # Mirrors watchdog's InotifyObserver, with the tap between emitters and the fd.
        def __init__(self) -> None:
            super().__init__(InotifyEmitter, inotify_fd=_InotifyTap(fd, on_exhausted, on_overflow))

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            fd.stop()
            with contextlib.suppress(RuntimeError):
                fd.join(timeout=5)

    fd.start()
    return _TappedInotifyObserver(), fd
