"""Small JSON state files in the index directory that other processes read.

``watcher.json`` is written by a running watcher (pid, pending events, last
update, lag, polling fallbacks) so that ``codeindex status`` in another process
can report it. Writes are atomic (temp file + rename); a state whose pid is no
longer alive reads as not running.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

WATCHER_FILE = "watcher.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(index_dir: Path, name: str, state: dict[str, Any]) -> None:
    """Atomically replace ``index_dir/name`` with ``state`` as JSON."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=index_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, index_dir / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(index_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((index_dir / name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_state(index_dir: Path, name: str) -> None:
    (index_dir / name).unlink(missing_ok=True)


def watcher_state(index_dir: Path) -> dict[str, Any]:
    """The watcher's last published state; ``running`` is False if its process died."""
    data = read_state(index_dir, WATCHER_FILE)
    if not data:
        return {"running": False}
    pid = int(data.get("pid") or 0)
    if not pid or not _pid_alive(pid):
        return {"running": False, "last_update_at": data.get("last_update_at")}
    return data


def clean_stale_temp_files(index_dir: Path) -> int:
    """Remove temp files a killed process left behind; returns how many."""
    removed = 0
    for tmp in Path(index_dir).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed
