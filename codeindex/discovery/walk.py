"""The walker: ``walk()`` streams a tree as SourceFile / Skipped values;
``check_path()`` and ``resolve_inside_root()`` answer for one path the way a walk would.

Symlinks (only when ``settings.follow_symlinks``; otherwise they are silently left out):

* a link whose resolved target is outside the root -> ``Skipped(SYMLINK_OUTSIDE_ROOT)``;
* a dangling link -> ``Skipped(VANISHED, "dangling symlink ...")``;
* a link chain that loops on itself (ELOOP) -> ``Skipped(SYMLINK_LOOP)``;
* a link whose target is deny-listed (e.g. ``notes -> .env``) is left out like the target;
* a link to a file inside the root is yielded under the link's own path (file contents
  may therefore appear twice; deduplicating files would cost memory per file);
* a link to a directory inside the root is followed *after* the real tree has been walked.
  Visited directories are tracked by ``(st_dev, st_ino)``: when the target was already
  walked and is an ancestor of the link -> ``Skipped(SYMLINK_LOOP)``; when it was already
  walked elsewhere (its real path, usually) it is a duplicate and is silently left out, so
  content under a real, non-ignored directory is always indexed under its real path.

Order is deterministic: the real tree depth-first; inside one directory, files (and
``Skipped`` entries) in name order, then subdirectories in name order; then symlinked
directories in the order they were found. A ``Skipped`` whose path is a directory
(``UNREADABLE``/``VANISHED``/``SYMLINK_LOOP``) means that subtree was not listed, so a
caller diffing against the index must not treat files under it as deleted.

Hard links: a file with the same ``(st_dev, st_ino)`` as a deny-listed file listed
earlier in the walk is left out like it (limits in ``deny.py``).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from codeindex.config import Settings, check_path_length
from codeindex.discovery.classify import classify_file, stat_error_skip
from codeindex.discovery.deny import always_excluded, denied, index_dir_rels, within
from codeindex.discovery.ignore import IgnoreMatcher
from codeindex.errors import CodeIndexError, PathOutsideRootError
from codeindex.types import Skipped, SkipReason, SourceFile


class _Walker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = str(settings.root)
        self.root_real = os.path.realpath(self.root)
        self.matcher = IgnoreMatcher(settings)
        self.index_rels = index_dir_rels(settings)
        self.visited: set[tuple[int, int]] = set()
        # (st_dev, st_ino) of deny-listed files with more than one link: a hard link to
        # one of them is the same secret under another name (limits in deny.py).
        self.denied_inodes: set[tuple[int, int]] = set()
        # Symlinked directories inside the root, walked after the real tree so that a
        # directory reachable both ways is indexed under its real path.
        self.deferred: deque[tuple[str, str, str]] = deque()  # (rel, abs, parent abs)

    def run(self, under: str = "") -> Iterator[SourceFile | Skipped]:
        if under:
            yield from self._run_under(under)
            return
        try:
            st = os.stat(self.root)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        except OSError as exc:
            raise self._root_error(exc) from None
        self.visited.add((st.st_dev, st.st_ino))
        yield from self._walk_tree("", self.root)
        while self.deferred:
            rel, abs_path, parent_abs = self.deferred.popleft()
            yield from self._enter_symlinked_dir(rel, abs_path, parent_abs)

    def _run_under(self, under: str) -> Iterator[SourceFile | Skipped]:
        rel, logical, canonical = _resolve(self.settings, under)
        if not rel:
            yield from self.run()
            return
        # Through a symlinked directory (the full walk reaches it under its real path or
        # after the real tree), or pruned by the rules: the full walk lists nothing here.
        if canonical != rel or self.matcher.is_ignored(rel, True):
            return
        try:
            st = os.lstat(logical)
        except OSError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        self.visited.add((st.st_dev, st.st_ino))
        yield from self._walk_tree(rel, logical)
        # self.deferred (symlinked directories) is not walked: which of them the full walk
        # enters depends on the real directories outside this subtree (see walk()).

    def _root_error(self, exc: OSError) -> CodeIndexError:
        # Not a per-file problem: yielding nothing here would look like "every file was
        # deleted" to the caller, so fail loudly instead.
        return CodeIndexError(
            f"{self.root}: cannot list the root directory ({exc.strerror or exc}); "
            "check that it exists and is readable."
        )

    def _enter_symlinked_dir(
        self, rel: str, abs_path: str, parent_abs: str
    ) -> Iterator[SourceFile | Skipped]:
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            yield stat_error_skip(rel, exc, is_link=True, abs_path=abs_path)
            return
        key = (st.st_dev, st.st_ino)
        if key in self.visited:
            target = os.path.realpath(abs_path)
            if within(os.path.realpath(parent_abs), target):
                yield Skipped(rel, SkipReason.SYMLINK_LOOP, f"links back to its ancestor {target}")
            # Otherwise a duplicate of a directory already walked: left out silently.
            return
        self.visited.add(key)
        yield from self._walk_tree(rel, abs_path)

    def _walk_tree(self, rel0: str, abs0: str) -> Iterator[SourceFile | Skipped]:
        # Explicit stack (no recursion limit on deep trees). Each frame is one pending
        # directory; only subdirectory names wait on the stack, never file entries.
        stack: list[tuple[str, str]] = [(rel0, abs0)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            try:
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if not rel_dir:
                    raise self._root_error(exc) from None
                yield stat_error_skip(rel_dir, exc, is_link=False, abs_path=abs_dir)
                continue
            subdirs: list[tuple[str, str]] = []
            for entry in entries:
                out = self._entry(entry, rel_dir, abs_dir, subdirs)
                if out is not None:
                    yield out
            del entries
            stack.extend(reversed(subdirs))

    def _entry(
        self, entry: os.DirEntry[str], rel_dir: str, abs_dir: str, subdirs: list[tuple[str, str]]
    ) -> SourceFile | Skipped | None:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        abs_path = entry.path
        try:
            is_link = entry.is_symlink()
        except OSError:
            is_link = False
        try:
            is_dir = entry.is_dir()  # follows symlinks; d_type, no syscall, for the rest
        except OSError:
            is_dir = False
        # Ignore rules first: ignored/deny-listed entries are never reported, and only a
        # deny-listed file is stat'ed (to recognise its hard links).
        if self.matcher._entry_ignored(rel, is_dir):
            if not is_dir and not is_link and denied(rel, False):
                self._remember_denied(entry)
            return None
        if is_link:
            return self._symlink(rel, abs_path, abs_dir)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            return stat_error_skip(rel, exc, is_link=False, abs_path=abs_path)
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key not in self.visited:  # only a bind mount could repeat a real directory
                self.visited.add(key)
                subdirs.append((rel, abs_path))
            return None
        if self._denied_twin(st):
            return None
        return classify_file(self.settings, rel, abs_path, st, self.matcher)

    def _remember_denied(self, entry: os.DirEntry[str]) -> None:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            self.denied_inodes.add((st.st_dev, st.st_ino))

    def _denied_twin(self, st: os.stat_result) -> bool:
        """True if ``st`` is a hard link to a deny-listed file listed earlier."""
        return st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.denied_inodes

    def _symlink(self, rel: str, abs_path: str, abs_dir: str) -> SourceFile | Skipped | None:
        if not self.settings.follow_symlinks:
            return None
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            return stat_error_skip(rel, exc, is_link=True, abs_path=abs_path)
        target = os.path.realpath(abs_path)
        if not within(target, self.root_real):
            return Skipped(rel, SkipReason.SYMLINK_OUTSIDE_ROOT, f"points to {target}")
        target_rel = os.path.relpath(target, self.root_real).replace(os.sep, "/")
        is_dir = stat.S_ISDIR(st.st_mode)
        # A link must not smuggle a deny-listed target in under an innocent name.
        if target_rel != "." and always_excluded(target_rel, is_dir, self.index_rels):
            return None
        if is_dir:
            self.deferred.append((rel, abs_path, abs_dir))
            return None
        if self._denied_twin(st):
            return None
        return classify_file(self.settings, rel, abs_path, st, self.matcher)


def walk(settings: Settings, under: str = "") -> Iterator[SourceFile | Skipped]:
    """Stream the tree under ``settings.root`` as SourceFile / Skipped values.

    ``under`` (a directory relative to the root, POSIX) walks only that subtree, with
    the same ignore, deny and classification rules: what the full walk yields under it,
    in the same order, except what the full walk reaches through a symlinked directory
    (such directories are not entered). Nothing is yielded when ``under`` is ignored,
    deny-listed, missing, not a directory, or reached through a symlinked directory;
    PathOutsideRootError when it is absolute or escapes with ``..``.

    Metadata only, never file contents (the 8 KiB sniff for NUL bytes and generated text
    is not retained).
    Deterministic order (see the module docstring). Memory is O(depth + one directory
    listing + pending subdirectory names + visited directory inodes + pending symlinked
    directories). Per-file and per-directory problems are yielded as ``Skipped``; only an
    unlistable root raises (CodeIndexError), because an empty walk would read as
    "everything was deleted".
    """
    return _Walker(settings).run(under)


# --------------------------------------------------------------------------- single paths


def _resolve(settings: Settings, rel_path: str) -> tuple[str, str, str]:
    """Validate ``rel_path``; return (normalized rel, absolute logical path, canonical rel).

    The canonical rel is the resolved (symlink-free) path relative to the real root.
    Raises PathOutsideRootError for absolute paths, ``..`` escaping the root, or a path
    that resolves through symlinks outside the root; CodeIndexError for a path too long
    for the OS (config.check_path_length).
    """
    root = str(settings.root)
    raw = os.fspath(rel_path)
    if "\0" in raw:
        raise PathOutsideRootError(f"{raw!r} contains a NUL byte; pass a plain relative path.")
    check_path_length(raw)
    if raw.startswith("/") or os.path.isabs(raw):
        raise PathOutsideRootError(
            f"{raw!r} is an absolute path; pass a path relative to the indexed root {root}."
        )
    norm = posixpath.normpath(raw) if raw else "."
    if norm == ".." or norm.startswith("../"):
        raise PathOutsideRootError(
            f"{raw!r} uses '..' to escape the indexed root {root}; pass a path inside the root."
        )
    rel = "" if norm == "." else norm
    logical = os.path.join(root, rel) if rel else root
    root_real = os.path.realpath(root)
    real = os.path.realpath(logical)
    if not within(real, root_real):
        raise PathOutsideRootError(
            f"{raw!r} resolves through a symlink to {real}, outside the indexed root "
            f"{root}; only files inside the root can be read."
        )
    canonical = os.path.relpath(real, root_real).replace(os.sep, "/")
    return rel, logical, "" if canonical == "." else canonical


def resolve_inside_root(settings: Settings, rel_path: str) -> Path:
    """Absolute, symlink-resolved path of ``rel_path``, guaranteed inside the root.

    Raises PathOutsideRootError (with a message naming the problem) when ``rel_path`` is
    absolute, escapes with ``..``, resolves through a symlink outside the root, or names
    (directly or through a symlink) a deny-listed path, a ``.git`` entry or the index
    directory. Gitignored paths are not refused here (use check_path for that). The path
    need not exist.
    """
    rel, _logical, canonical = _resolve(settings, rel_path)
    index_rels = index_dir_rels(settings)
    for candidate in (rel, canonical):
        # As a file and as a directory: the path need not exist, and the deny list has
        # file-name entries (.env) and directory entries (.ssh/).
        if always_excluded(candidate, False, index_rels) or always_excluded(
            candidate, True, index_rels
        ):
            raise PathOutsideRootError(
                f"{rel_path!r} is deny-listed (secrets, .git or the index directory) and "
                "is never read; pick another file."
            )
    real_root = Path(os.path.realpath(settings.root))
    return real_root / canonical if canonical else real_root


def check_path(
    settings: Settings, rel_path: str, matcher: IgnoreMatcher | None = None
) -> SourceFile | Skipped | None:
    """Classify one relative path the way walk() would.

    Returns None when walk() would not yield it: ignored, deny-listed, missing, a
    directory, a symlink with ``follow_symlinks`` off, or a path through a symlinked
    directory that walk() reaches under its real path instead (the duplicate rule).
    Otherwise returns Skipped(...) or SourceFile. Pass the watcher's long-lived matcher to
    reuse its cache. Raises PathOutsideRootError when ``rel_path`` is absolute, escapes
    with ``..``, or resolves through a symlink outside the root (walk() would instead yield
    Skipped(SYMLINK_OUTSIDE_ROOT) for such a link).
    """
    rel, logical, canonical = _resolve(settings, rel_path)
    if not rel:
        return None  # the root is a directory
    matcher = matcher if matcher is not None else IgnoreMatcher(settings)
    try:
        lst = os.lstat(logical)
    except OSError:
        return None  # missing (or a parent is unlistable): nothing walk() would yield
    is_link = stat.S_ISLNK(lst.st_mode)
    st: os.stat_result | None
    try:
        st = os.stat(logical) if is_link else lst
        stat_err: OSError | None = None
    except OSError as exc:
        st, stat_err = None, exc
    is_dir = st is not None and stat.S_ISDIR(st.st_mode)
    if is_dir or matcher.is_ignored(rel, is_dir):
        return None
    index_rels = index_dir_rels(settings)
    parent = rel.rpartition("/")[0]
    real_parent = os.path.realpath(
        os.path.join(str(settings.root), parent) if parent else settings.root
    )
    real_root = os.path.realpath(settings.root)
    if real_parent != (os.path.join(real_root, parent) if parent else real_root):
        # The path goes through a symlinked directory.
        if not settings.follow_symlinks:
            return None
        canon_parent = os.path.relpath(real_parent, real_root).replace(os.sep, "/")
        canon_parent = "" if canon_parent == "." else canon_parent
        if canon_parent and always_excluded(canon_parent, True, index_rels):
            return None  # walk() never follows a link into a deny-listed directory
        if not canon_parent or not matcher.is_ignored(canon_parent, True):
            return None  # walk() reaches this directory under its real path instead
    if is_link:
        if not settings.follow_symlinks:
            return None
        if stat_err is not None:
            return stat_error_skip(rel, stat_err, is_link=True, abs_path=logical)
        if canonical and always_excluded(canonical, False, index_rels):
            return None
    assert st is not None
    return classify_file(settings, rel, logical, st, matcher)
