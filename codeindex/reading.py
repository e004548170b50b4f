"""The one way codeindex opens a file a repository controls (sources, ignore files,
``.git`` files, its own config files): never blocking, never anything but a regular file.

A repository can commit a FIFO (``open`` blocks forever), a symlink to ``/dev/zero`` or
``/dev/urandom`` (reading never ends), or a socket. ``open_regular`` opens without
blocking (``O_NONBLOCK``), optionally refuses symlinks (``O_NOFOLLOW``), ``fstat``s the
descriptor it got (so a file swapped after a ``stat`` is judged by what was opened) and
refuses anything that is not a regular file. ``read_regular`` adds a byte cap. Both raise
``OSError`` subclasses; callers turn them into ``Skipped`` values or warnings.

``open_beneath`` opens a path below a directory one component at a time, refusing a
symlink at every level: what ``get_code`` uses so that a path checked to lie inside the
root cannot be swapped for a link out of it between the check and the open.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import BinaryIO

# O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
# O_CLOEXEC: a descriptor never leaks into a child process started meanwhile.
_BASE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# O_NOFOLLOW on a symlink fails with ELOOP (EMLINK on some BSDs).
_SYMLINK_ERRNOS = (errno.ELOOP, errno.EMLINK)


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device, directory or (with ``follow_symlinks=False``)
    a symbolic link. ``kind`` says which, in words."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", path)
        self.kind = kind


class SymlinkInPathError(OSError):
    """A directory component of a path opened by :func:`open_beneath` is a symbolic link
    (a link in the last component is a ``NotRegularFileError`` with kind "symbolic
    link", as for :func:`open_regular`)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, "a directory in the path is a symbolic link", path)


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
        if not follow_symlinks and exc.errno in _SYMLINK_ERRNOS:
            raise NotRegularFileError(path, "symbolic link") from None
        raise
    return fd, _regular_or_close(fd, path)


def _regular_or_close(fd: int, path: str) -> os.stat_result:
    """``fstat`` of ``fd`` if it is a regular file; otherwise close it and raise
    ``NotRegularFileError`` (or the ``OSError`` from ``fstat``)."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, special_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return st


def _component_wise_supported() -> bool:
    """Whether this platform can open relative to a directory descriptor with
    ``O_NOFOLLOW`` and ``O_DIRECTORY`` (Linux, macOS, the BSDs; not Windows)."""
    return bool(_NOFOLLOW and _DIRECTORY and os.open in os.supports_dir_fd)


def _is_symlink(name: str, dir_fd: int) -> bool:
    """Whether ``name`` in directory ``dir_fd`` is a symlink now (False if it is gone)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_beneath(root: str, parts: Sequence[str]) -> tuple[int, os.stat_result]:
    """Open regular file ``root/parts[0]/.../parts[-1]`` without following any symlink
    below ``root``; return (descriptor, its fstat). The caller owns the descriptor.

    ``root`` itself is opened as given (symlinks in it are followed: it is the caller's
    trusted starting point). Every directory component is then opened with
    ``O_DIRECTORY | O_NOFOLLOW`` relative to the descriptor of its parent, and the last
    with ``O_NOFOLLOW | O_NONBLOCK``, so a component that is a symlink *at open time*
    fails the open: a path checked to lie inside ``root`` cannot be swapped (file or
    parent directory) for a link out of it before it is read. ``parts`` must be plain
    names: not empty, not ``.`` or ``..``, no ``/`` (``ValueError`` otherwise).

    Raises ``SymlinkInPathError`` when a directory component is a symlink,
    ``NotRegularFileError`` when the last one is a symlink ("symbolic link") or anything
    but a regular file (a FIFO is refused without blocking), or the ``OSError`` from an
    open (``FileNotFoundError``, ``NotADirectoryError``, ``PermissionError``, ...).
    Where the platform lacks ``dir_fd`` opens (Windows) it falls back to
    :func:`open_regular` with ``follow_symlinks=False``, which checks the last
    component only.
    """
    if not parts or any(p in ("", ".", "..") or "/" in p or os.sep in p for p in parts):
        raise ValueError(f"open_beneath wants plain path components, got {list(parts)!r}")
    path = os.path.join(root, *parts)
    if not _component_wise_supported():
        return open_regular(path, follow_symlinks=False)
    dir_flags = os.O_RDONLY | _DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    dir_fd = os.open(root, dir_flags)
    try:
        for i, name in enumerate(parts[:-1]):
            try:
                child = os.open(name, dir_flags | _NOFOLLOW, dir_fd=dir_fd)
            except OSError as exc:
                # Linux answers ENOTDIR (not ELOOP) for a symlink opened with O_DIRECTORY
                # | O_NOFOLLOW; the lstat only picks the message, the open already refused.
                if exc.errno in _SYMLINK_ERRNOS or _is_symlink(name, dir_fd):
                    raise SymlinkInPathError(os.path.join(root, *parts[: i + 1])) from None
                raise
            os.close(dir_fd)
            dir_fd = child
        try:
            fd = os.open(parts[-1], _BASE_FLAGS | _NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRNOS:
                raise NotRegularFileError(path, "symbolic link") from None
            raise
    finally:
        os.close(dir_fd)
    return fd, _regular_or_close(fd, path)


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
