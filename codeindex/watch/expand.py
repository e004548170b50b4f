"""A batch as file paths: the changed files plus what its directories hold.

A vanished directory stands for the paths the index holds under it (indexed or
skipped: they may get no event of their own); a top-level directory that was just
watched stands for the files on disk under it (created before its watch existed),
found by discovery's walk so that the same ignore, deny and classification rules apply
as in ``codeindex index``. Past ``limit`` paths the answer is None: the worker then
reconciles the whole root instead (a full walk, which streams).
"""

from __future__ import annotations

from codeindex import discovery
from codeindex.errors import BadCursorError, IndexMissingError
from codeindex.service import CodeIndex


def expand(
    ci: CodeIndex, paths: list[str], gone_dirs: list[str], scan_dirs: list[str], limit: int
) -> list[str] | None:
    """``paths`` plus the indexed paths under ``gone_dirs`` and the files on disk under
    ``scan_dirs`` (relative POSIX paths), each once, in that order; None when that is
    more than ``limit`` paths or the index changed under a listing."""
    out = dict.fromkeys(paths)
    # Only the outermost of nested directories needs expanding.
    for rel_dir in _outermost(gone_dirs):
        found = _indexed_under(ci, rel_dir, limit)
        if found is None:
            return None
        out.update(dict.fromkeys(found))
        if len(out) > limit:
            return None
    for rel_dir in _outermost(scan_dirs):
        found = _files_under(ci, rel_dir, limit - len(out))
        if found is None:
            return None
        out.update(dict.fromkeys(found))
        if len(out) > limit:
            return None
    return list(out)


def _indexed_under(ci: CodeIndex, rel_dir: str, limit: int) -> list[str] | None:
    """Paths the index holds (indexed or skipped) under ``rel_dir``."""
    prefix = rel_dir + "/"
    found: list[str] = []
    for skipped in (False, True):
        cursor = ""
        while True:
            try:
                res = ci.list_files(
                    page_size=500, cursor=cursor, glob=f"{rel_dir}/**", skipped=skipped
                )
            except IndexMissingError:
                return found
            except BadCursorError:
                return None  # the index moved on under us: let a reconcile decide
            found.extend(f.path for f in res.files if f.path.startswith(prefix))
            if len(found) > limit:
                return None
            cursor = res.next_cursor or ""
            if not cursor:
                break
    return found


def _files_under(ci: CodeIndex, rel_dir: str, budget: int) -> list[str] | None:
    """What discovery yields under ``rel_dir`` (files, and paths it skips; symlinked
    directories are not entered); None when more than ``budget``. The walk stops there."""
    found: list[str] = []
    for item in discovery.walk(ci.settings, under=rel_dir):
        found.append(item.path)
        if len(found) > budget:
            return None
    return found


def _outermost(dirs: list[str]) -> list[str]:
    """Drop directories nested in another one of the list."""
    out: list[str] = []
    for d in sorted(set(dirs)):
        if not out or not (d == out[-1] or d.startswith(out[-1] + "/")):
            out.append(d)
    return out
