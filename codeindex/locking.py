"""The index's single-writer lock (an advisory ``flock`` on ``<index>/writer.lock``).

flock locks die with their process, so a killed writer never leaves a stale lock.
Readers never take it: LanceDB readers see committed versions only.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from codeindex.errors import LockBusyError

LOCK_NAME = "writer.lock"


class WriterLock:
    """Exclusive writer lock for one index directory. Re-entrant within one object."""

    def __init__(self, index_dir: Path) -> None:
        self.path = Path(index_dir) / LOCK_NAME
        self._fd: int | None = None
        self._depth = 0

    def acquire(
        self,
        wait: bool = True,
        on_wait: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Take the lock. If another process holds it: wait (telling ``on_wait`` once)
        or raise LockBusyError when ``wait`` is False or ``timeout`` expires."""
        if self._fd is not None:
            self._depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                msg = f"another codeindex process{holder} is writing to {self.path.parent}"
                if not wait:
                    raise LockBusyError(
                        f"{msg}; wait for it to finish or run again without --no-wait."
                    ) from None
                if on_wait:
                    on_wait(f"{msg}; waiting for it to finish…")
                self._blocking_lock(fd, msg, timeout)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1

    @staticmethod
    def _blocking_lock(fd: int, msg: str, timeout: float | None) -> None:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusyError(f"{msg}; gave up after {timeout:.0f}s.") from None
                time.sleep(0.05)  # polling a lock held by another process

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(index_dir: Path) -> bool:
    """True when some process (possibly this one) holds the writer lock."""
    path = Path(index_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
