"""The one way codeindex opens a file a repository controls (sources, ignore files,
``.git`` files, its own config files): never blocking, never anything but a regular file.

A repository can commit a FIFO (``open`` blocks forever), a symlink to ``/dev/zero`` or
``/dev/urandom`` (reading never ends), or a socket. ``open_regular`` opens without
blocking (``O_NONBLOCK``), optionally refuses symlinks (``O_NOFOLLOW``), ``fstat``s the
descriptor it got (so a file swapped after a ``stat`` is judged by what was opened) and
refuses anything that is not a regular file. ``read_regular`` adds a byte cap. Both raise
``OSError`` subclasses; callers turn them into ``Skipped`` values or warnings.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

# O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
# O_CLOEXEC: a descriptor never leaks into a child process started meanwhile.
_BASE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device, directory or (with ``follow_symlinks=False``)
    a symbolic link. ``kind`` says which, in words."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", path)
        self.kind = kind


class TooLargeError(OSError):
    """The file holds more than the caller's cap (``limit`` bytes)."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {limit} bytes", path)
        self.limit = limit


# What a file that is not regular is, in words, by its stat mode.
_KINDS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"),
)


def special_kind(mode: int) -> str:
    """What a non-regular file is, in words (for skip details and warnings)."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str, *, follow_symlinks: bool) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only; return (descriptor, its fstat) for a regular file only.

    Never blocks (a FIFO opens at once and is then refused). With
    ``follow_symlinks=False`` a symlink in the last component is refused
    (``NotRegularFileError`` with kind "symbolic link"); links in parent directories are
    still followed. The caller owns the descriptor and must close it. Raises
    ``NotRegularFileError`` for anything that is not a regular file, or the ``OSError``
    from ``open``/``fstat`` (FileNotFoundError, PermissionError, ...).
    """
    flags = _BASE_FLAGS | (0 if follow_symlinks else _NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        # O_NOFOLLOW on a symlink fails with ELOOP (EMLINK on some BSDs).
        if not follow_symlinks and exc.errno in (errno.ELOOP, errno.EMLINK):
            raise NotRegularFileError(path, "symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, special_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_binary(path: str, *, follow_symlinks: bool = True) -> BinaryIO:
    """``open(path, "rb")`` for a regular file only, never blocking: what the indexer and
    ``get_code`` use to read a file discovery already judged, which may have been swapped
    for a FIFO or device since. Raises like :func:`open_regular`."""
    fd, _ = open_regular(path, follow_symlinks=follow_symlinks)
    return os.fdopen(fd, "rb")


def read_regular(path: str, limit: int, *, follow_symlinks: bool = False) -> bytes:
    """The whole content of regular file ``path``, which must hold at most ``limit`` bytes.

    Reads at most ``limit + 1`` bytes whatever the file claims (its size can change
    while it is read), so memory is bounded by ``limit``. Symlinks are refused unless
    ``follow_symlinks``. Raises ``NotRegularFileError``, ``TooLargeError`` or the
    ``OSError`` from opening or reading.
    """
    fd, st = open_regular(path, follow_symlinks=follow_symlinks)
    try:
        if st.st_size > limit:
            raise TooLargeError(path, limit)
        parts: list[bytes] = []
        got = 0
        while got <= limit:
            part = os.read(fd, limit + 1 - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        if got > limit:
            raise TooLargeError(path, limit)
        return b"".join(parts)
    finally:
        os.close(fd)
