"""Ignore files: nested ``.gitignore`` / ``.codeindexignore`` and ``.git/info/exclude``.

Precedence follows git: within one file the last matching pattern wins; a deeper
directory's ignore file overrides a shallower one; ``.git/info/exclude`` is weakest. In one
directory ``.codeindexignore`` overrides ``.gitignore`` (like ripgrep's ``.ignore``). A file
cannot be re-included when one of its parent directories is excluded, because excluded
directories are pruned and never listed. ``IgnoreMatcher`` also applies the deny list
(``deny.py``), so "is this path left out?" has one answer.

Ignore files and a ``.git`` file are read like untrusted input (``reading.py``): only a
regular file, never through a symlink in its last component (git does not follow a
symlinked ``.gitignore`` either), never blocking, at most ``MAX_IGNORE_FILE_BYTES`` /
``MAX_GIT_FILE_BYTES``. One that fails any of these is skipped whole, with a warning on
the ``codeindex.discovery.ignore`` logger naming the file; its patterns do not apply
(the deny list always does). A file over the cap is skipped rather than truncated: a
cut-off pattern list would apply rules its author did not write (a lost ``!negation``, a
pattern cut mid-line), silently. Inside a file that is read, a line no pattern can be
made of (a lone ``\\`` or ``!``) is skipped with a warning naming the file and line, as
git silently skips it; the file's other lines apply.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections import OrderedDict

from pathspec import GitIgnoreSpec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from codeindex.config import Settings
from codeindex.discovery.deny import always_excluded, index_dir_rels, within
from codeindex.reading import NotRegularFileError, TooLargeError, read_regular

log = logging.getLogger(__name__)

# Ignore files honoured in every directory, weakest first (later overrides earlier).
IGNORE_FILENAMES: tuple[str, ...] = (".gitignore", ".codeindexignore")
# The one whose ``!negation`` lines also bring back generated files.
_CODEINDEXIGNORE = ".codeindexignore"

# How many directories' parsed ignore files IgnoreMatcher keeps; an LRU, so the
# ancestors of the directory being walked (touched on every lookup) stay cached.
DEFAULT_MATCHER_CACHE_DIRS = 1024

# The most bytes read from one ignore file (.gitignore, .codeindexignore,
# .git/info/exclude); a bigger one is skipped with a warning. Hand-written ignore files
# are a few KB and large monorepos' tens of KB, so 1 MiB is far above any real one. It
# also bounds time: every pattern is compiled and then tried against each path beneath
# its directory; about 50,000 patterns (1 MiB) take ~10 s to compile and ~20 ms per path
# checked (pathspec, one laptop core).
MAX_IGNORE_FILE_BYTES = 1024 * 1024
# A ``.git`` *file* (linked worktrees, submodules) holds one ``gitdir: <path>`` line, and a
# path is at most PATH_MAX (4096) bytes on Linux.
MAX_GIT_FILE_BYTES = 8 * 1024
# How many invalid lines of one ignore file its warning quotes (a hostile file can hold
# thousands; one warning per file, never one per line).
_REPORTED_BAD_LINES = 5


class IgnoreMatcher:
    """Answers "would discovery leave this path out?" for one root.

    Ignore files are read lazily, per directory, and kept in a bounded LRU cache
    (``max_cached_dirs`` directories), so the watcher can call ``is_ignored`` per event
    without re-reading files and without memory growing with the tree. An evicted
    directory is simply re-read on its next use. Call ``invalidate()`` when an ignore file
    changes. Not thread-safe: use one matcher per thread.
    """

    def __init__(
        self, settings: Settings, max_cached_dirs: int = DEFAULT_MATCHER_CACHE_DIRS
    ) -> None:
        self._root = str(settings.root)
        self._index_rels = index_dir_rels(settings)
        self._max = max(1, max_cached_dirs)
        # Per directory: (ignore file name, parsed patterns), weakest first.
        self._cache: OrderedDict[str, tuple[tuple[str, GitIgnoreSpec], ...]] = OrderedDict()
        self._exclude: GitIgnoreSpec | None = None
        self._exclude_loaded = False

    # ---- public

    def is_ignored(self, rel_path: str, is_dir: bool = False) -> bool:
        """True if ``rel_path`` (POSIX, relative to the root) would be left out by walk().

        That is: it, or one of its parent directories, is ignored by an ignore file,
        deny-listed, a ``.git`` entry, or the index directory. A trailing ``/`` means
        ``is_dir=True``. Paths that are absolute or escape the root count as ignored.
        The root itself is never ignored.
        """
        if rel_path.endswith("/"):
            is_dir = True
        if rel_path.startswith("/"):
            return True
        rel = posixpath.normpath(rel_path) if rel_path else "."
        if rel == ".":
            return False
        if rel == ".." or rel.startswith("../"):
            return True
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            last = i == len(parts)
            if self._entry_ignored("/".join(parts[:i]), is_dir if last else True):
                return True
        return False

    def invalidate(self) -> None:
        """Forget every cached ignore file (call when a .gitignore/.codeindexignore changes)."""
        self._cache.clear()
        self._exclude = None
        self._exclude_loaded = False

    # ---- used by walk(), which already knows the parents are not ignored

    def _entry_ignored(self, rel: str, is_dir: bool) -> bool:
        """Like is_ignored() but checks only the last component (parents assumed kept)."""
        if always_excluded(rel, is_dir, self._index_rels):
            return True
        decision = self._decision(rel, is_dir)
        return decision is not None and decision[0]

    def _reincluded(self, rel: str) -> bool:
        """True when the pattern deciding file ``rel`` is a ``!negation`` in a
        .codeindexignore: that brings back a file the generated-text rules would skip.
        Checks the last component only, like _entry_ignored()."""
        return self._decision(rel, False) == (False, _CODEINDEXIGNORE)

    def _decision(self, rel: str, is_dir: bool) -> tuple[bool, str] | None:
        """(ignored?, ignore file name) of the pattern that decides ``rel``, or None."""
        suffix = "/" if is_dir else ""
        # Walk the ignore files from the entry's own directory up to the root: the
        # deepest file with a matching pattern decides (git's precedence).
        parent = rel.rpartition("/")[0]
        d = parent
        while True:
            sub = rel[len(d) + 1 :] if d else rel
            for name, spec in reversed(self._specs(d)):
                result = spec.check_file(sub + suffix)
                if result.include is not None:
                    return bool(result.include), name
            if not d:
                break
            d = d.rpartition("/")[0]
        exclude = self._info_exclude()
        if exclude is not None:
            result = exclude.check_file(rel + suffix)
            if result.include is not None:
                return bool(result.include), "info/exclude"
        return None

    # ---- loading

    def _specs(self, rel_dir: str) -> tuple[tuple[str, GitIgnoreSpec], ...]:
        specs = self._cache.get(rel_dir)
        if specs is not None:
            self._cache.move_to_end(rel_dir)
            return specs
        base = os.path.join(self._root, rel_dir) if rel_dir else self._root
        loaded = []
        for name in IGNORE_FILENAMES:
            spec = _read_spec(os.path.join(base, name), self._root)
            if spec is not None:
                loaded.append((name, spec))
        specs = tuple(loaded)
        self._cache[rel_dir] = specs
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return specs

    def _info_exclude(self) -> GitIgnoreSpec | None:
        if not self._exclude_loaded:
            self._exclude_loaded = True
            git_dir = _git_dir(self._root)
            if git_dir is not None:
                exclude = os.path.join(git_dir, "info", "exclude")
                self._exclude = _read_spec(exclude, self._root)
        return self._exclude


def _shown(path: str, root: str) -> str:
    """``path`` as a warning names it: relative to the root when inside it."""
    if within(path, root) and path != root:
        return os.path.relpath(path, root).replace(os.sep, "/")
    return path


def _read_untrusted(path: str, limit: int, root: str, what: str, effect: str) -> bytes | None:
    """The bytes of ``path`` (a regular file of at most ``limit`` bytes), or None.

    A missing file is None silently (the usual case). Anything else that stops the read
    (a FIFO, device, socket, directory or symlink; over ``limit``; no permission) is None
    with one warning naming the file (``what`` it is), why it was skipped and the
    ``effect`` of skipping it.
    """
    try:
        return read_regular(path, limit, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except NotRegularFileError as exc:
        why = f"not a regular file ({exc.kind})"
    except TooLargeError as exc:
        why = f"larger than {exc.limit} bytes"
    except OSError as exc:
        why = f"cannot read it: {exc.strerror or exc}"
    log.warning("%s: %s skipped, %s; %s", _shown(path, root), what, why, effect)
    return None


def _read_spec(path: str, root: str) -> GitIgnoreSpec | None:
    """Parse one ignore file; a missing or skipped one (see _read_untrusted) counts as empty."""
    data = _read_untrusted(
        path, MAX_IGNORE_FILE_BYTES, root, "ignore file", "its patterns do not apply"
    )
    if data is None:
        return None
    lines = data.decode("utf-8", errors="surrogateescape").splitlines()
    spec = _compile(lines, _shown(path, root))
    return spec if len(spec) else None


def _compile(lines: list[str], shown: str) -> GitIgnoreSpec:
    """The patterns of one ignore file, leaving out lines pathspec cannot compile.

    Git accepts any line: one it cannot use (a lone ``\\``, a lone ``!``, a pattern ending
    in an unescaped backslash) simply matches nothing, and the rest of the file applies.
    Pathspec raises on those, which would stop the whole walk, so each line is compiled
    on its own and the bad ones are named in one warning per file (bounded: the first
    ``_REPORTED_BAD_LINES`` of them).
    """
    patterns: list[GitIgnoreSpecPattern] = []
    bad: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            patterns.append(GitIgnoreSpecPattern(line))
        except ValueError:  # GitIgnorePatternError
            bad.append(f"line {number} {line!r}")
    if bad:
        shown_bad = ", ".join(bad[:_REPORTED_BAD_LINES])
        more = len(bad) - _REPORTED_BAD_LINES
        log.warning(
            "%s: skipped %d invalid pattern line(s), which git ignores too: %s%s",
            shown,
            len(bad),
            shown_bad,
            f" and {more} more" if more > 0 else "",
        )
    return GitIgnoreSpec(patterns)


def _git_dir(root: str) -> str | None:
    """The root's git directory: ``.git/`` or the target of a ``.git`` file (worktrees)."""
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git):  # follows a symlink to a directory, as git does
        return dot_git
    data = _read_untrusted(
        dot_git, MAX_GIT_FILE_BYTES, root, "git file", "info/exclude of its git dir is not read"
    )
    if data is None:
        return None
    first = data.decode("utf-8", errors="surrogateescape").partition("\n")[0].strip()
    if first.startswith("gitdir:"):
        return os.path.join(root, first[len("gitdir:") :].strip())
    return None
