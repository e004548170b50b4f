"""A killed run leaves a consistent index; the next run completes it exactly."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from codeindex.config import load_settings
from codeindex.embedding import FAKE_MODEL, FakeEmbedder
from codeindex.service import CodeIndex
from codeindex.storage import Filter, Store


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"pkg{i % 20}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(
            f"def function_{i}(x):\n    return x + {i}\n\n\n"
            f"class Thing{i}:\n    def method(self):\n        return 'thing {i}'\n"
        )


def _snapshot(index_dir: Path) -> tuple[dict, list]:
    store = Store(index_dir, 384)
    files = {}
    for path in store.iter_file_paths():
        rec = store.get_files([path])[path]
        files[path] = (rec.content_hash, rec.chunk_count, rec.skip_reason)
    chunks = sorted(store.iter_chunk_hashes())
    return files, chunks


# A run of `CodeIndex.index` in a child process that says when it is under way and can
# never finish. advance() runs on the writer thread after each file it took (and after
# any flush that file completed): at SIGNAL_AT it prints a line for the parent, which
# kills the child at once, amid the writes that follow; at BLOCK_AT it stops the run,
# so however slow the parent is, the kill still lands before the run could finish.
_KILLED_CHILD = r"""
import sys, threading
from codeindex.config import load_settings
from codeindex.embedding import FakeEmbedder
from codeindex.service import CodeIndex
SIGNAL_AT, BLOCK_AT = 300, 900
class Hook:
    taken = 0
    def phase(self, name, total):
        pass
    def advance(self, n=1, **info):
        self.taken += n
        if self.taken == SIGNAL_AT:
            print("under way", flush=True)
        if self.taken == BLOCK_AT:
            threading.Event().wait()
settings = load_settings(sys.argv[1], env={}, model=sys.argv[2], write_batch_rows=16)
CodeIndex(settings, embedder=FakeEmbedder()).index(progress=Hook())
"""


def test_sigkill_mid_index_then_resume_matches_fresh_index(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root, 1500)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(root), FAKE_MODEL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    index_dir = root / ".codeindex"
    try:
        # Block on the child's stdout (bounded) until it is under way, then kill it hard.
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert line == "under way\n", proc.stderr.read()  # the child is gone: read to its end
    assert proc.returncode == -signal.SIGKILL
    killed_with_rows = Store(index_dir, 384).count_files()
    assert 50 <= killed_with_rows < 1500

    settings = load_settings(root, env={}, model=FAKE_MODEL, version_retention_seconds=0)
    resumed = CodeIndex(settings, embedder=FakeEmbedder())
    rep = resumed.index()
    assert not rep.failed
    assert rep.added + rep.updated + rep.unchanged == 1500

    fresh_dir = tmp_path / "fresh-index"
    fresh = CodeIndex(settings.replace(index_dir=fresh_dir), embedder=FakeEmbedder())
    fresh.index()
    got_files, got_chunks = _snapshot(index_dir)
    want_files, want_chunks = _snapshot(fresh_dir)
    assert got_files == want_files
    assert got_chunks == want_chunks  # no duplicated or lost rows
    store = Store(index_dir, 384)
    assert store.count_chunks(Filter(embedded=False)) == 0
