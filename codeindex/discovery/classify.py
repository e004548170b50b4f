"""One file's stat result -> SourceFile or Skipped: the size cap, binary and generated
sniffing (one read of at most SNIFF_BYTES, not retained), and stat/open errors as data."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from codeindex.config import Settings
from codeindex.discovery.generated import (
    SNIFF_BYTES,
    generated_by_head,
    generated_by_name,
    generated_skip,
)
from codeindex.discovery.ignore import IgnoreMatcher
from codeindex.languages import detect_language
from codeindex.reading import NotRegularFileError, open_regular, special_kind
from codeindex.types import Skipped, SkipReason, SourceFile


def _too_large(settings: Settings, rel: str, size: int) -> Skipped | None:
    limit = settings.max_file_bytes
    if size <= limit:
        return None
    return Skipped(
        rel,
        SkipReason.TOO_LARGE,
        f"{size} bytes > max_file_mb={settings.max_file_mb:g} ({limit} bytes); "
        "raise max_file_mb to index it",
    )


def classify_file(
    settings: Settings, rel: str, abs_path: str, st: os.stat_result, matcher: IgnoreMatcher
) -> SourceFile | Skipped:
    """Turn a stat result (of the target, for symlinks) into SourceFile or Skipped.

    Never opens anything that is not a regular file: a FIFO would block on open.
    ``matcher`` says whether a .codeindexignore negation brings a generated file back.
    """
    if not stat.S_ISREG(st.st_mode):
        return Skipped(rel, SkipReason.SPECIAL_FILE, special_kind(st.st_mode))
    judge_generated = not settings.index_generated
    if judge_generated:
        why = generated_by_name(rel)  # before opening: a lock file is never read
        if why is not None:
            if not matcher._reincluded(rel):
                return generated_skip(rel, why)
            judge_generated = False  # the user asked for this file by name
    skipped = _too_large(settings, rel, st.st_size)
    if skipped is not None:
        return skipped
    try:
        # Non-blocking and judged by fstat: a file swapped for a FIFO since the stat
        # neither hangs the open nor gets read. Symlinks were vetted by the walker.
        fd, fst = open_regular(abs_path, follow_symlinks=True)
    except NotRegularFileError as exc:
        return Skipped(rel, SkipReason.SPECIAL_FILE, exc.kind)
    except FileNotFoundError:
        return Skipped(rel, SkipReason.VANISHED, "disappeared before it could be opened")
    except PermissionError as exc:
        return Skipped(rel, SkipReason.UNREADABLE, f"permission denied: {exc.strerror}")
    except OSError as exc:
        return Skipped(rel, SkipReason.UNREADABLE, f"cannot open: {exc.strerror or exc}")
    try:
        skipped = _too_large(settings, rel, fst.st_size)
        if skipped is not None:
            return skipped
        head = os.read(fd, SNIFF_BYTES)
    except OSError as exc:
        return Skipped(rel, SkipReason.UNREADABLE, f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if b"\0" in head:
        return Skipped(rel, SkipReason.BINARY, f"NUL byte in the first {SNIFF_BYTES} bytes")
    if judge_generated:
        why = generated_by_head(head)
        if why is not None and not matcher._reincluded(rel):
            return generated_skip(rel, why)
    return SourceFile(
        path=rel,
        abs_path=Path(abs_path),
        size=fst.st_size,
        mtime_ns=fst.st_mtime_ns,
        language=detect_language(rel),
    )


def stat_error_skip(rel: str, exc: OSError, *, is_link: bool, abs_path: str) -> Skipped:
    """Map an error from stat()/scandir() to a Skipped value."""
    if is_link and isinstance(exc, FileNotFoundError):
        try:
            target = os.readlink(abs_path)
        except OSError:
            target = "?"
        return Skipped(rel, SkipReason.VANISHED, f"dangling symlink (target {target!r} missing)")
    if exc.errno == errno.ELOOP:
        return Skipped(rel, SkipReason.SYMLINK_LOOP, "symlink chain loops on itself")
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return Skipped(rel, SkipReason.VANISHED, "disappeared during the walk")
    if isinstance(exc, PermissionError):
        return Skipped(rel, SkipReason.UNREADABLE, f"permission denied: {exc.strerror}")
    return Skipped(rel, SkipReason.UNREADABLE, f"{exc.strerror or exc}")
