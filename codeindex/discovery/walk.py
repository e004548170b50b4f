"""Discovery: stream the files under a root that are worth indexing.

``walk()`` yields metadata only (``SourceFile``) or a reason a file was seen but not
indexed (``Skipped``). It never reads file contents except an 8 KiB sniff of each
regular file (for NUL bytes and the shape of machine-written text), which is not
retained. Per-file problems become ``Skipped`` values, never exceptions.

Machine-written text (lock files, minified bundles, source maps, SVGs, files whose
header says a tool wrote them) is yielded as ``Skipped(GENERATED)`` unless
``settings.index_generated`` is set or a ``!negation`` in a ``.codeindexignore`` is the
pattern that decides the file (see ``GENERATED_NAMES`` and ``generated_reason``).

What is never yielded at all (not even as ``Skipped``):

* paths ignored by nested ``.gitignore`` / ``.codeindexignore`` files or ``.git/info/exclude``;
* the security deny list ``DENY_PATTERNS`` (applied at any depth; no negation re-includes it);
* any ``.git`` entry and ``settings.index_dir`` when it lies inside the root.

Ignore precedence follows git: within one file the last matching pattern wins; a deeper
directory's ignore file overrides a shallower one; ``.git/info/exclude`` is weakest. In one
directory ``.codeindexignore`` overrides ``.gitignore`` (like ripgrep's ``.ignore``). A file
cannot be re-included when one of its parent directories is excluded, because excluded
directories are pruned and never listed.

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
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import re
import stat
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path

from pathspec import GitIgnoreSpec

from codeindex.config import Settings
from codeindex.errors import CodeIndexError, PathOutsideRootError
from codeindex.languages import detect_language
from codeindex.types import Skipped, SkipReason, SourceFile

__all__ = [
    "DENY_PATTERNS",
    "GENERATED_NAMES",
    "IGNORE_FILENAMES",
    "SNIFF_BYTES",
    "IgnoreMatcher",
    "check_path",
    "generated_reason",
    "resolve_inside_root",
    "walk",
]

# Gitignore syntax, matched against the whole relative path, so a pattern without a slash
# applies at any depth and a directory pattern hides everything beneath it. Checked
# separately from ignore files so that no ``!negation`` can re-include these.
DENY_PATTERNS: tuple[str, ...] = (
    # environment files
    ".env",
    ".env.*",
    ".envrc",
    # private keys and certificates / key stores
    "*.pem",
    "*.key",
    "*.ppk",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    # tool credentials
    ".npmrc",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "secrets.*",
    "*.tfstate",
    "*.tfstate.*",
    # credential directories
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/",
    ".kube/",
    ".azure/",
)
_DENY_SPEC = GitIgnoreSpec.from_lines(DENY_PATTERNS)

# Ignore files honoured in every directory, weakest first (later overrides earlier).
IGNORE_FILENAMES: tuple[str, ...] = (".gitignore", ".codeindexignore")
# The one whose ``!negation`` lines also bring back generated files.
_CODEINDEXIGNORE = ".codeindexignore"

# Bytes read from the head of a file to detect binaries (git uses the same heuristic).
SNIFF_BYTES = 8192

# How many directories' parsed ignore files IgnoreMatcher keeps; an LRU, so the
# ancestors of the directory being walked (touched on every lookup) stay cached.
DEFAULT_MATCHER_CACHE_DIRS = 1024

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


# --------------------------------------------------------------------------- generated text
#
# Machine-written text is noise in search results and can cost most of the embedding
# time (in one real repository a uv.lock was 31% of all chunks). Every rule that marks a
# file as generated lives in this section: first by name (no I/O), then by the shape of
# the head already sniffed for NUL bytes (never more than SNIFF_BYTES). A match is
# yielded as Skipped(GENERATED); ``settings.index_generated`` turns all of them off and a
# ``!pattern`` in a .codeindexignore brings back the files it decides.

# Base-name shapes (glob syntax, matched case-insensitively against the last path
# component) and the reason each one is reported under.
GENERATED_NAMES: tuple[tuple[str, str], ...] = (
    # Dependency lock files: resolver output, thousands of near-identical entries (uv,
    # Cargo, poetry, Gemfile, yarn, composer, Pipfile, flake, pdm, bun, deno, mix ...).
    ("*.lock", "lock file"),
    ("*.lockfile", "lock file"),  # gradle.lockfile
    ("package-lock.json", "lock file"),  # npm
    ("npm-shrinkwrap.json", "lock file"),  # npm
    ("pnpm-lock.yaml", "lock file"),
    ("packages.lock.json", "lock file"),  # NuGet
    ("package.resolved", "lock file"),  # SwiftPM
    (".terraform.lock.hcl", "lock file"),
    ("go.sum", "lock file"),  # Go module checksums
    ("go.work.sum", "lock file"),
    # Minified bundles: whole programs squeezed onto a few lines.
    ("*.min.js", "minified"),
    ("*.min.mjs", "minified"),
    ("*.min.css", "minified"),
    ("*-min.js", "minified"),
    ("*-min.css", "minified"),
    # Source maps (app.js.map, site.css.map): JSON of base64 VLQ position mappings.
    ("*.map", "source map"),
    # SVG: XML of path coordinates, not code anyone searches for.
    ("*.svg", "svg"),
)
_GENERATED_NAME_RES = tuple(
    (re.compile(fnmatch.translate(glob)), glob, why) for glob, why in GENERATED_NAMES
)
# All of them in one regex: a name that matches none (nearly all) costs one call.
_GENERATED_NAME_ANY = re.compile("|".join(fnmatch.translate(g) for g, _why in GENERATED_NAMES))

# Minified text without a telling name (dist/app.js, one-line JSON dumps): the sniffed
# head averages more than MINIFIED_AVG_LINE_BYTES bytes per line. Hand-written code and
# prose average well under 100 (an embedded base64 blob in a source file barely moves
# it); a head shorter than _MINIFIED_MIN_HEAD is not judged, so a small file with a long
# line is kept.
MINIFIED_AVG_LINE_BYTES = 500
_MINIFIED_MIN_HEAD = 4096

# A header saying a tool wrote the file: among the comment lines before the first line
# of code (at most _MARKER_LINES lines), the "@generated" tag (Cargo, Buck, Relay) or a
# line with "generated" and "do not edit"/"do not modify" (Go's "// Code generated ...
# DO NOT EDIT.", protoc, most code generators). Code that merely mentions the phrase,
# or a docstring, is not a comment before the first line of code, so it is kept.
_MARKER_LINES = 40
_LINE_COMMENTS = (b"#", b"//", b"--", b";", b"%", b"<?xml")  # <?xml: a prolog, not code
_BLOCK_COMMENTS = ((b"/*", b"*/"), (b"<!--", b"-->"), (b"{-", b"-}"), (b"(*", b"*)"))


def _generated_by_name(rel: str) -> str | None:
    name = rel.rpartition("/")[2].lower()
    if not _GENERATED_NAME_ANY.match(name):
        return None
    for regex, glob, why in _GENERATED_NAME_RES:
        if regex.match(name):
            return f"{why} ({glob})"
    return None


def _minified(head: bytes) -> str | None:
    if len(head) < _MINIFIED_MIN_HEAD:
        return None
    lines = head.count(b"\n") + (not head.endswith(b"\n"))  # a cut last line counts
    average = len(head) // lines
    if average <= MINIFIED_AVG_LINE_BYTES:
        return None
    return f"minified ({average} bytes per line on average in the first {len(head)} bytes)"


def _generated_marker(head: bytes) -> str | None:
    if b"generated" not in head.lower():  # in every marker: a fast pre-check
        return None
    closing = b""  # end of the block comment we are in, if any
    lines = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", _MARKER_LINES)
    for number, line in enumerate(lines[:_MARKER_LINES], start=1):
        text = line.strip()
        if closing:
            if closing in text:
                closing = b""
        elif not text:
            continue
        else:
            for opening, end in _BLOCK_COMMENTS:
                if text.startswith(opening):
                    closing = b"" if end in text[len(opening) :] else end
                    break
            else:
                if not text.startswith(_LINE_COMMENTS):
                    return None  # the first line of code: the header is over
        low = text.lower()
        if b"@generated" in low or (
            b"generated" in low and (b"do not edit" in low or b"do not modify" in low)
        ):
            return f"generated marker (line {number}: {text[:80].decode('utf-8', 'replace')})"
    return None


def generated_reason(rel_path: str, head: bytes | None = None) -> str | None:
    """Why a file looks machine-written ("lock file (*.lock)", "minified (...)", ...).

    Judges the name of ``rel_path`` and, when given, ``head`` (the file's first
    SNIFF_BYTES; longer input is cut there). None when no rule matches. Pure: no I/O, and
    neither settings nor ignore files are consulted (walk() does that).
    """
    why = _generated_by_name(rel_path)
    if why is None and head is not None:
        head = head[:SNIFF_BYTES]
        why = _minified(head) or _generated_marker(head)
    return why


def _generated_skip(rel: str, why: str) -> Skipped:
    name = re.sub(r"([*?\[\\])", r"\\\1", rel.rpartition("/")[2])
    return Skipped(
        rel,
        SkipReason.GENERATED,
        f"{why}; to index it add '!{name}' to .codeindexignore or set index_generated = true",
    )


# --------------------------------------------------------------------------- helpers


def _within(path: str, root: str) -> bool:
    """True if absolute ``path`` is ``root`` or lies beneath it (both already resolved)."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def _index_rels(settings: Settings) -> tuple[str, ...]:
    """Relative POSIX paths of the index directory, if it lies inside the root."""
    out: list[str] = []
    pairs = (
        (str(settings.index_dir), str(settings.root)),
        (os.path.realpath(settings.index_dir), os.path.realpath(settings.root)),
    )
    for idx, root in pairs:
        if idx != root and _within(idx, root):
            rel = os.path.relpath(idx, root).replace(os.sep, "/")
            if rel not in out:
                out.append(rel)
    return tuple(out)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "not a regular file"


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


def _classify_file(
    settings: Settings, rel: str, abs_path: str, st: os.stat_result, matcher: IgnoreMatcher
) -> SourceFile | Skipped:
    """Turn a stat result (of the target, for symlinks) into SourceFile or Skipped.

    Never opens anything that is not a regular file: a FIFO would block on open.
    ``matcher`` says whether a .codeindexignore negation brings a generated file back.
    """
    if not stat.S_ISREG(st.st_mode):
        return Skipped(rel, SkipReason.SPECIAL_FILE, _special_kind(st.st_mode))
    judge_generated = not settings.index_generated
    if judge_generated:
        why = _generated_by_name(rel)  # before opening: a lock file is never read
        if why is not None:
            if not matcher._reincluded(rel):
                return _generated_skip(rel, why)
            judge_generated = False  # the user asked for this file by name
    skipped = _too_large(settings, rel, st.st_size)
    if skipped is not None:
        return skipped
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the stat, open won't hang.
        fd = os.open(abs_path, _OPEN_FLAGS)
    except FileNotFoundError:
        return Skipped(rel, SkipReason.VANISHED, "disappeared before it could be opened")
    except PermissionError as exc:
        return Skipped(rel, SkipReason.UNREADABLE, f"permission denied: {exc.strerror}")
    except OSError as exc:
        return Skipped(rel, SkipReason.UNREADABLE, f"cannot open: {exc.strerror or exc}")
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            return Skipped(rel, SkipReason.SPECIAL_FILE, _special_kind(fst.st_mode))
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
        why = _minified(head) or _generated_marker(head)
        if why is not None and not matcher._reincluded(rel):
            return _generated_skip(rel, why)
    return SourceFile(
        path=rel,
        abs_path=Path(abs_path),
        size=fst.st_size,
        mtime_ns=fst.st_mtime_ns,
        language=detect_language(rel),
    )


def _stat_error_skip(rel: str, exc: OSError, *, is_link: bool, abs_path: str) -> Skipped:
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


# --------------------------------------------------------------------------- matcher


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
        self._index_rels = _index_rels(settings)
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
        if _always_excluded(rel, is_dir, self._index_rels):
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
            spec = _read_spec(os.path.join(base, name))
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
                self._exclude = _read_spec(os.path.join(git_dir, "info", "exclude"))
        return self._exclude


def _read_spec(path: str) -> GitIgnoreSpec | None:
    """Parse one ignore file; a missing or unreadable one counts as empty."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except (OSError, ValueError):
        return None
    spec = GitIgnoreSpec.from_lines(lines)
    return spec if len(spec) else None


def _git_dir(root: str) -> str | None:
    """The root's git directory: ``.git/`` or the target of a ``.git`` file (worktrees)."""
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    try:
        with open(dot_git, encoding="utf-8") as fh:
            first = fh.readline().strip()
    except (OSError, ValueError):
        return None
    if first.startswith("gitdir:"):
        return os.path.join(root, first[len("gitdir:") :].strip())
    return None


def _always_excluded(rel: str, is_dir: bool, index_rels: tuple[str, ...] = ()) -> bool:
    """True for deny-listed paths, anything in a ``.git`` entry, and the index directory.

    Checks every component of ``rel`` (no ignore files involved, no I/O).
    """
    if not rel:
        return False
    parts = rel.split("/")
    if ".git" in parts:
        return True
    for idx in index_rels:
        if rel == idx or rel.startswith(idx + "/"):
            return True
    return bool(_DENY_SPEC.match_file(rel + ("/" if is_dir else "")))


# --------------------------------------------------------------------------- walk


class _Walker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = str(settings.root)
        self.root_real = os.path.realpath(self.root)
        self.matcher = IgnoreMatcher(settings)
        self.index_rels = _index_rels(settings)
        self.visited: set[tuple[int, int]] = set()
        # Symlinked directories inside the root, walked after the real tree so that a
        # directory reachable both ways is indexed under its real path.
        self.deferred: deque[tuple[str, str, str]] = deque()  # (rel, abs, parent abs)

    def run(self) -> Iterator[SourceFile | Skipped]:
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
            yield _stat_error_skip(rel, exc, is_link=True, abs_path=abs_path)
            return
        key = (st.st_dev, st.st_ino)
        if key in self.visited:
            target = os.path.realpath(abs_path)
            if _within(os.path.realpath(parent_abs), target):
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
                yield _stat_error_skip(rel_dir, exc, is_link=False, abs_path=abs_dir)
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
        # Ignore rules first: ignored/deny-listed entries are never stat'ed nor reported.
        if self.matcher._entry_ignored(rel, is_dir):
            return None
        if is_link:
            return self._symlink(rel, abs_path, abs_dir)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            return _stat_error_skip(rel, exc, is_link=False, abs_path=abs_path)
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key not in self.visited:  # only a bind mount could repeat a real directory
                self.visited.add(key)
                subdirs.append((rel, abs_path))
            return None
        return _classify_file(self.settings, rel, abs_path, st, self.matcher)

    def _symlink(self, rel: str, abs_path: str, abs_dir: str) -> SourceFile | Skipped | None:
        if not self.settings.follow_symlinks:
            return None
        try:
            st = os.stat(abs_path)
        except OSError as exc:
            return _stat_error_skip(rel, exc, is_link=True, abs_path=abs_path)
        target = os.path.realpath(abs_path)
        if not _within(target, self.root_real):
            return Skipped(rel, SkipReason.SYMLINK_OUTSIDE_ROOT, f"points to {target}")
        target_rel = os.path.relpath(target, self.root_real).replace(os.sep, "/")
        is_dir = stat.S_ISDIR(st.st_mode)
        # A link must not smuggle a deny-listed target in under an innocent name.
        if target_rel != "." and _always_excluded(target_rel, is_dir, self.index_rels):
            return None
        if is_dir:
            self.deferred.append((rel, abs_path, abs_dir))
            return None
        return _classify_file(self.settings, rel, abs_path, st, self.matcher)


def walk(settings: Settings) -> Iterator[SourceFile | Skipped]:
    """Stream the tree under ``settings.root`` as SourceFile / Skipped values.

    Metadata only, never file contents (the 8 KiB sniff for NUL bytes and generated text
    is not retained).
    Deterministic order (see the module docstring). Memory is O(depth + one directory
    listing + pending subdirectory names + visited directory inodes + pending symlinked
    directories). Per-file and per-directory problems are yielded as ``Skipped``; only an
    unlistable root raises (CodeIndexError), because an empty walk would read as
    "everything was deleted".
    """
    return _Walker(settings).run()


# --------------------------------------------------------------------------- single paths


def _resolve(settings: Settings, rel_path: str) -> tuple[str, str, str]:
    """Validate ``rel_path``; return (normalized rel, absolute logical path, canonical rel).

    The canonical rel is the resolved (symlink-free) path relative to the real root.
    Raises PathOutsideRootError for absolute paths, ``..`` escaping the root, or a path
    that resolves through symlinks outside the root.
    """
    root = str(settings.root)
    raw = os.fspath(rel_path)
    if "\0" in raw:
        raise PathOutsideRootError(f"{raw!r} contains a NUL byte; pass a plain relative path.")
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
    if not _within(real, root_real):
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
    index_rels = _index_rels(settings)
    for candidate in (rel, canonical):
        # is_dir=True also catches directory-only deny patterns (.ssh/ ...); for a
        # file name the dir form matches whenever the file form does.
        if _always_excluded(candidate, True, index_rels):
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
    index_rels = _index_rels(settings)
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
        if canon_parent and _always_excluded(canon_parent, True, index_rels):
            return None  # walk() never follows a link into a deny-listed directory
        if not canon_parent or not matcher.is_ignored(canon_parent, True):
            return None  # walk() reaches this directory under its real path instead
    if is_link:
        if not settings.follow_symlinks:
            return None
        if stat_err is not None:
            return _stat_error_skip(rel, stat_err, is_link=True, abs_path=logical)
        if canonical and _always_excluded(canonical, False, index_rels):
            return None
    assert st is not None
    return _classify_file(settings, rel, logical, st, matcher)
