"""A killed run leaves a consistent index; the next run completes it exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from codeindex.config import load_settings
from codeindex.embedding import FAKE_MODEL, FakeEmbedder
from codeindex.service import CodeIndex
from codeindex.storage import Filter, Store, index_exists


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


def test_sigkill_mid_index_then_resume_matches_fresh_index(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root, 1500)
    env = {**os.environ, "CODEINDEX_MODEL": FAKE_MODEL, "CODEINDEX_WRITE_BATCH_ROWS": "16"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeindex", "index", str(root), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    index_dir = root / ".codeindex"
    deadline = time.monotonic() + 120
    killed_with_rows = 0
    try:
        # Poll (bounded) until the writer has committed some files, then kill it hard.
        while time.monotonic() < deadline and proc.poll() is None:
            if index_exists(index_dir):
                try:
                    killed_with_rows = Store(index_dir, 384).count_files()
                except Exception:  # tables still being created
                    killed_with_rows = 0
                if killed_with_rows >= 50:
                    break
        assert proc.poll() is None, "index finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
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
