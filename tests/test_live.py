"""LiveIndex, the shared state of the long-running modes: warm-up, idle unload and
reload, one background job at a time with visible progress, and the watcher.

The fake embedder where the model is not the point; the real bundled model for idle
unload (the fake has no model to unload). Waits are on observable state with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codeindex.config import load_settings
from codeindex.errors import CodeIndexError
from codeindex.live import IndexJob, LiveIndex
from codeindex.locking import WriterLock
from codeindex.types import IndexReport
from tests.conftest import fake_settings

DEADLINE_S = 60.0


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after
    ``timeout`` seconds. The poll interval is not synchronisation: the state is."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.02)
    return value


class Updates:
    """The watcher's on_update events, and a wait for one of a kind (and path)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def seen(self, kind: str, path: str | None = None) -> bool:
        return any(e["event"] == kind and (path is None or path in e["paths"]) for e in self.events)

    def wait(self, kind: str, path: str | None = None) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: self.seen(kind, path), DEADLINE_S), (kind, path)


@pytest.fixture
def live(sample_repo: Path) -> Iterator[LiveIndex]:
    """A LiveIndex without watching, started and caught up (fake model)."""
    index = LiveIndex(fake_settings(sample_repo), watch=False)
    index.start(wait=True)  # without watching: returns once the catch-up has finished
    try:
        yield index
    finally:
        index.close()


def test_startup_catches_up_and_warms_the_model(live: LiveIndex) -> None:
    job = live.job
    assert job is not None and job.kind == "catch-up" and not job.running
    assert job.report is not None and job.report["added"] == 12
    wait_until(lambda: live.model_state == "loaded", "the warm-up")
    assert live.model_ready and not live.indexing
    page = live.search("validate_jwt", 3)
    assert page.semantic and page.coverage == 1.0
    assert page.results[0].path == "auth/tokens.py"
    info = live.info()
    assert info["model_state"] == "loaded" and info["open_error"] is None
    assert info["background_job"] == job.snapshot()
    # Not watching: the status says so instead of reading another process's watcher.json.
    assert live.index.status(check_stale=False).watcher == {
        "running": False,
        "note": "disabled (--no-watch)",
    }


def test_without_warm_up_searches_are_full_text_only(sample_repo: Path) -> None:
    live = LiveIndex(fake_settings(sample_repo), watch=False, warm_up=False)
    try:
        live.start(wait=True)
        page = live.search("validate_jwt", 3)
        assert page.results and page.coverage == 1.0
        assert not page.semantic  # the model was never asked for
        assert live.model_state == "not loaded"
    finally:
        live.close()


def test_one_background_job_at_a_time_with_visible_progress(live: LiveIndex) -> None:
    other = WriterLock(live.settings.index_dir)
    other.acquire()  # another writer: the job waits for it, so it is surely running
    try:
        job, started = live.reindex()
        assert started and job.kind == "reindex" and job.paths is None
        wait_until(lambda: job.snapshot()["phase"] == "waiting for another writer", "the wait")
        waiting = job.progress()
        assert job.running and live.indexing
        assert live.info()["background_job"]["state"] == "running"
        again, started = live.reindex(["auth/tokens.py"])
        assert again is job and not started
        # Searches do not wait for a run.
        assert live.search("validate_jwt", 1).results[0].path == "auth/tokens.py"
    finally:
        other.release()
    assert job.finished.wait(DEADLINE_S)
    done = job.progress()
    assert done[0] > waiting[0] and done[0] == done[1] and done[2] == "done"
    snap = job.snapshot()
    assert snap["state"] == "done" and snap["report"]["added"] == 0
    assert snap["finished_at"] is not None
    # The next job may start now, and gets only the paths asked for.
    job2, started = live.reindex(["auth/tokens.py", "./auth/tokens.py"])
    assert started and job2.paths == ["auth/tokens.py"]
    assert job2.finished.wait(DEADLINE_S) and job2.error is None


def test_reindex_refuses_bad_paths_before_a_run_starts(sample_repo: Path) -> None:
    live = LiveIndex(fake_settings(sample_repo, max_reindex_paths=2), watch=False)
    try:
        for paths, why in [
            (["../etc/passwd"], ".."),
            (["auth"], "directory"),
            ([" "], "empty path"),
            (["a.py", "b.py", "c.py"], "3 paths is more than 2"),
        ]:
            with pytest.raises(CodeIndexError, match=why):
                live.reindex(paths)
        assert live.job is None  # nothing started
    finally:
        live.close()


def test_a_job_report_lists_at_most_max_reported_failures() -> None:
    failed = [{"path": f"f{i}.py", "reason": "unreadable", "detail": ""} for i in range(5)]
    job = IndexJob("reindex", ["f0.py"], max_failures=2)
    job.finish(IndexReport(failed=failed))
    report = job.snapshot()["report"]
    assert report["failed_count"] == 5
    assert [f["path"] for f in report["failed"]] == ["f0.py", "f1.py"]


def test_watching_reconciles_at_start_and_follows_changes(sample_repo: Path) -> None:
    # As the watch command uses it: no warm-up, updates reported through on_update.
    updates = Updates()
    live = LiveIndex(fake_settings(sample_repo), watch=True, warm_up=False, on_update=updates)
    try:
        live.start(wait=True)  # returns once the watcher runs; its reconcile catches up
        assert live.watcher_status()["running"] and live.job is None
        updates.wait("reconcile")
        (sample_repo / "net/wombat.py").write_text("def wombat_burrow_depth():\n    return 3\n")
        updates.wait("update", "net/wombat.py")
        hit = live.search("wombat_burrow_depth", 1).results[0]
        assert hit.path == "net/wombat.py"
        assert live.index.status(check_stale=False).watcher["running"] is True
    finally:
        live.close(flush=True)
    assert live.watcher_status()["running"] is False


@pytest.mark.model
def test_idle_unload_then_reload_on_the_next_search(real_index, tmp_path: Path) -> None:
    # A copy (index included): the session's real_index is shared with other modules.
    root = tmp_path / "repo"
    shutil.copytree(real_index.settings.root, root, symlinks=True)
    settings = load_settings(root, env={}, version_retention_seconds=0, idle_unload_minutes=0.01)
    live = LiveIndex(settings, watch=False)  # unloads after 0.6 s without use
    try:
        live.start(wait=True)
        wait_until(lambda: live.model_ready, "the warm-up")
        query = "where are JWTs validated"
        before = live.search(query, 5)
        assert before.semantic and before.results[0].path == "auth/tokens.py"
        wait_until(lambda: live.model_state == "unloaded (idle)", "the idle unload")
        assert not live.index.embedder.loaded  # its memory went back
        # The next search reloads the model itself and ranks exactly as before.
        after = live.search(query, 5)
        assert after.semantic and after.results == before.results
        assert live.model_state == "loaded"
    finally:
        live.close()


@pytest.mark.model
def test_watch_mode_unloads_when_idle_and_reloads_for_the_next_update(
    real_index, tmp_path: Path
) -> None:
    # As the watch command runs it (no warm-up): an update with code to embed loads the
    # model, idle time gives its memory back, the next update loads it again.
    root = tmp_path / "repo"
    shutil.copytree(real_index.settings.root, root, symlinks=True)
    settings = load_settings(root, env={}, version_retention_seconds=0, idle_unload_minutes=0.01)
    updates = Updates()
    live = LiveIndex(settings, watch=True, warm_up=False, on_update=updates)
    try:
        live.start(wait=True)
        (root / "otter.py").write_text("def otter_dive_seconds():\n    return 240\n")
        updates.wait("update", "otter.py")
        embedder = live.index.embedder
        assert embedder.loaded  # the update embedded its chunk with the real model
        wait_until(lambda: not embedder.loaded, "the idle unload")
        (root / "heron.py").write_text("def heron_wading_depth_cm():\n    return 30\n")
        updates.wait("update", "heron.py")
        assert embedder.loaded  # reloaded for the update
        page = live.index.search("how deep does the heron wade", 3)  # the vector side too
        assert page.semantic and page.results[0].path == "heron.py"
    finally:
        live.close(flush=True)
