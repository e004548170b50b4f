"""Watch mode: a real watchdog observer on a real temp tree, LanceDB on disk, the fast
fake embedder. Every wait is bounded and blocks on something that signals: the
watcher's own conditions (wait_idle / wait_for_update), a hook on the CodeIndex it
applies through, a line from a child process, or a file-system event on the state a
watcher publishes. None sleeps, and no assertion depends on how fast the machine is."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from codeindex import runstate
from codeindex.embedding import FAKE_MODEL, FakeEmbedder
from codeindex.errors import LockBusyError
from codeindex.locking import WriterLock, is_locked
from codeindex.service import CodeIndex
from codeindex.storage import Store
from codeindex.watch import Watcher
from tests.conftest import UTC_ISO, fake_settings

TIMEOUT = 30.0

# ---------------------------------------------------------------------------- helpers


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def func(name: str, body: str = "") -> str:
    return f"def {name}(x):\n    return x  # {body or name}\n"


def eventually(w: Watcher, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT):
    """Wait until ``predicate()`` holds with the watcher idle; between checks block on
    the watcher's condition for the next applied update (no sleeping)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = w.status()["updates_applied"]
        if w.wait_idle(max(0.0, deadline - time.monotonic())) and predicate():
            return
        left = deadline - time.monotonic()
        if left <= 0 or not w.wait_for_update(seen, left):
            if predicate():
                return
            raise AssertionError(f"timed out waiting for {what}; watcher: {w.status()}")


def wait_for_published(
    index_dir: Path, predicate: Callable[[dict], bool], what: str, timeout: float = TIMEOUT
) -> dict:
    """Block until the state a watcher publishes in ``index_dir`` (watcher.json, written
    atomically, maybe by another process) satisfies ``predicate``; return that state.
    Each write wakes the wait through a watchdog observer of the test's own on
    ``index_dir``, so the state is re-read when it changes, not on a timer."""
    changed = threading.Event()

    class Wake(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            changed.set()

    observer = Observer()
    observer.schedule(Wake(), str(index_dir))
    observer.start()  # watching once start() returns: no write can slip past
    try:
        deadline = time.monotonic() + timeout
        while True:
            changed.clear()  # before the read: a write after it wakes the wait below
            state = runstate.watcher_state(index_dir)
            if predicate(state):
                return state
            left = deadline - time.monotonic()
            if left <= 0 or not changed.wait(left):
                raise AssertionError(f"timed out waiting for {what}; published: {state}")
    finally:
        observer.stop()
        observer.join()


class Lines:
    """What a child process writes to one pipe, collected line by line by a thread.
    :meth:`wait_for` blocks until a matching line has arrived (each line wakes it)."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[str], bool], what: str, timeout: float, nth: int = 1
    ) -> str:
        """The ``nth`` line satisfying ``predicate``; fails when it did not come within
        ``timeout`` seconds or the pipe closed without it."""

        def found() -> str | None:
            matches = [line for line in self.lines if predicate(line)]
            return matches[nth - 1] if len(matches) >= nth else None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self._ended, timeout)
            line = found()
        if line is None:
            raise AssertionError(f"no line for {what}; got: {''.join(self.lines)[-2000:]}")
        return line

    def text(self, timeout: float = TIMEOUT) -> str:
        """Everything written, once the pipe has closed (the process exited)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the pipe stayed open"
        return "".join(self.lines)


def is_event(kind: str) -> Callable[[str], bool]:
    """A predicate for one ``codeindex watch --json`` line of the given event kind."""
    return lambda line: json.loads(line)["event"] == kind


def peak_rss(pid: int) -> int:
    """The peak resident set size of process ``pid`` so far (Linux's VmHWM), in bytes:
    the high-water mark, with no need to sample while the peak happens."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def assert_lag_is_from_the_change(event: dict, debounce_ms: int, waited: float) -> None:
    """An update's ``lag_seconds`` runs from the first change of its batch: at least the
    quiet period (no batch is applied sooner), at most what the test ``waited`` between
    making the change and seeing the update. Both hold however slow the machine is."""
    lag = event["lag_seconds"]
    assert lag is not None
    assert debounce_ms / 1000 <= lag <= waited + 0.001, (lag, waited)  # lag: rounded to ms


def hit_paths(reader: CodeIndex, query: str, k: int = 10) -> list[str]:
    return [h.path for h in reader.search(query, k=k).results]


def shows(reader: CodeIndex, path: str, text: str) -> bool:
    """A search for ``text`` returns exactly one hit of ``path`` whose snippet holds
    ``text``: its current content (not a similar older version), not duplicated."""
    hits = reader.search(text, k=10).results
    return sum(h.path == path and text in h.snippet for h in hits) == 1


def indexed(reader: CodeIndex) -> set[str]:
    out: set[str] = set()
    for skipped in (False, True):
        cursor = ""
        while True:
            page = reader.list_files(page_size=500, cursor=cursor, skipped=skipped)
            out.update(f.path for f in page.files)
            cursor = page.next_cursor or ""
            if not cursor:
                break
    return out


def snapshot(index_dir: Path) -> tuple[dict, list]:
    """The files table (path -> hash, chunk count, skip reason) and every chunk's
    (path, content_hash), sorted: equal snapshots mean equal indexes."""
    store = Store(index_dir, 384)
    paths = list(store.iter_file_paths())
    files = {}
    for i in range(0, len(paths), 500):
        for path, rec in store.get_files(paths[i : i + 500]).items():
            files[path] = (rec.content_hash, rec.chunk_count, rec.skip_reason)
    assert len(files) == len(paths)
    return files, sorted(store.iter_chunk_hashes())


def fresh_snapshot(root: Path, tmp_path: Path, **overrides: Any) -> tuple[dict, list]:
    settings = fake_settings(root, index_dir=tmp_path / "fresh-index", **overrides)
    CodeIndex(settings, embedder=FakeEmbedder()).index()
    return snapshot(settings.index_dir)


def make_tree(root: Path) -> None:
    write(root / "src" / "app.py", func("app_main", "application entry"))
    write(root / "src" / "util" / "helpers.py", func("helper_one"))
    write(root / "docs" / "guide.md", "# Guide\n\nHow to use the widget frobnicator.\n")
    write(root / "README.md", "# Demo\n")
    write(root / ".gitignore", "node_modules/\n*.log\n")


class Harness:
    """A started watcher, its CodeIndex (with a counting fake embedder) and a separate
    reader CodeIndex (its own embedder, so searches do not count as indexing)."""

    def __init__(self, root: Path, **settings: Any) -> None:
        settings.setdefault("debounce_ms", 100)
        settings.setdefault("max_debounce_ms", 1000)
        self.root = root
        self.settings = fake_settings(root, **settings)
        self.embedder = FakeEmbedder()
        self.ci = CodeIndex(self.settings, embedder=self.embedder, long_lived=True)
        self.reader = CodeIndex(self.settings, embedder=FakeEmbedder(), long_lived=True)
        self.events: list[dict] = []
        self.watcher: Watcher | None = None

    def start(self, **kwargs: Any) -> Watcher:
        self.watcher = Watcher(self.ci, on_update=self.events.append, **kwargs)
        self.watcher.start()
        assert self.watcher.wait_idle(TIMEOUT), "startup reconcile did not finish"
        return self.watcher

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    root = tmp_path / "repo"
    make_tree(root)
    h = Harness(root)
    yield h
    h.stop()


@pytest.fixture
def watched(harness: Harness) -> Harness:
    harness.start()
    return harness


# ---------------------------------------------------------------------------- basics


def test_startup_reconcile_indexes_existing_tree_and_reports_status(watched: Harness) -> None:
    w = watched.watcher
    assert indexed(watched.reader) == {
        "src/app.py",
        "src/util/helpers.py",
        "docs/guide.md",
        "README.md",
        ".gitignore",
    }
    assert watched.events[0]["event"] == "reconcile" and watched.events[0]["reason"] == "startup"
    st = watched.ci.status(check_stale=False).watcher
    assert st["running"] is True and st["pending"] == 0 and st["lag_seconds"] == 0.0
    assert st["updates_applied"] == 1 and st["mode"] == "native" and st["polling_fallback"] == []
    assert UTC_ISO.fullmatch(st["last_update_at"]) and UTC_ISO.fullmatch(st["started_at"])
    assert UTC_ISO.fullmatch(watched.events[0]["at"])
    # Another process (here: another CodeIndex without a watcher) reads watcher.json.
    other = CodeIndex(watched.settings, embedder=FakeEmbedder()).status(check_stale=False)
    assert other.watcher["running"] is True and other.watcher["pid"] == os.getpid()
    w.stop()
    assert w.status()["running"] is False
    assert runstate.watcher_state(watched.settings.index_dir)["running"] is False


def test_create_modify_delete_are_searchable(watched: Harness) -> None:
    w, reader, root = watched.watcher, watched.reader, watched.root
    write(root / "src" / "billing.py", func("compute_invoice_total"))
    eventually(w, lambda: shows(reader, "src/billing.py", "compute_invoice_total"), "create")

    write(root / "src" / "billing.py", func("compute_refund_amount"))
    eventually(w, lambda: shows(reader, "src/billing.py", "compute_refund_amount"), "modify")
    snippets = [h.snippet for h in reader.search("compute_invoice_total", k=10).results]
    assert not any("compute_invoice_total" in s for s in snippets)  # old text replaced
    assert hit_paths(reader, "compute_refund_amount").count("src/billing.py") == 1

    changed_at = time.monotonic()
    (root / "src" / "billing.py").unlink()
    eventually(w, lambda: "src/billing.py" not in indexed(reader), "delete")
    waited = time.monotonic() - changed_at
    assert "src/billing.py" not in hit_paths(reader, "compute_refund_amount")
    update = watched.events[-1]
    assert update["event"] == "update" and update["deleted"] == 1
    assert_lag_is_from_the_change(update, watched.settings.debounce_ms, waited)


def test_rename_and_move_reuse_vectors(watched: Harness) -> None:
    w, reader, root, emb = watched.watcher, watched.reader, watched.root, watched.embedder
    write(root / "src" / "geometry.py", func("polygon_area_shoelace") + func("polygon_perimeter"))
    eventually(w, lambda: "src/geometry.py" in indexed(reader), "create")

    before = emb.texts_embedded
    os.rename(root / "src" / "geometry.py", root / "src" / "shapes.py")  # rename in place
    eventually(
        w,
        lambda: {"src/shapes.py"} <= indexed(reader) and "src/geometry.py" not in indexed(reader),
        "rename",
    )
    # The file's name is part of what is embedded: its two chunks, and only they, anew.
    assert emb.texts_embedded == before + 2, "a rename re-embeds the renamed file only"
    before = emb.texts_embedded

    (root / "lib" / "math").mkdir(parents=True)  # a new top-level directory
    os.rename(root / "src" / "shapes.py", root / "lib" / "math" / "shapes.py")
    os.rename(root / "src" / "util" / "helpers.py", root / "docs" / "helpers.py")
    eventually(
        w,
        lambda: (
            {"lib/math/shapes.py", "docs/helpers.py"} <= indexed(reader)
            and not {"src/shapes.py", "src/util/helpers.py"} & indexed(reader)
        ),
        "moves across directories",
    )
    assert emb.texts_embedded == before, "a move must reuse vectors, not re-embed"
    assert shows(reader, "lib/math/shapes.py", "polygon_area_shoelace")
    assert "src/shapes.py" not in hit_paths(reader, "polygon_area_shoelace")


def test_editor_save_patterns(watched: Harness, tmp_path: Path) -> None:
    w, reader, root = watched.watcher, watched.reader, watched.root
    target = root / "src" / "app.py"
    # vim: swap file, write a backup, write the new text to a temp file, rename over.
    swp = write(root / "src" / ".app.py.swp", "b0VIM 9.0\0\0binary swap")
    tmp = write(root / "src" / "4913", "")
    tmp.unlink()
    new = write(root / "src" / ".app.py.tmp123", func("app_main", "vim saved version"))
    os.replace(new, target)
    swp.unlink()
    eventually(w, lambda: shows(reader, "src/app.py", "vim saved version"), "rename-over save")
    # An editor that truncates and rewrites in place, twice in quick succession.
    target.write_text(func("app_main", "first draft"))
    target.write_text(func("app_main", "atomic final version"))
    # Atomic replace from another directory of the tree.
    staged = write(root / "docs" / "staged.md", "# Guide\n\nReplaced atomically quokka.\n")
    os.replace(staged, root / "docs" / "guide.md")
    eventually(
        w,
        lambda: (
            shows(reader, "docs/guide.md", "Replaced atomically quokka")
            and shows(reader, "src/app.py", "atomic final version")
        ),
        "in-place and atomic saves",
    )
    files = indexed(reader)
    assert not {"src/.app.py.swp", "src/4913", "src/.app.py.tmp123", "docs/staged.md"} & files
    assert snapshot(watched.settings.index_dir) == fresh_snapshot(root, tmp_path)


def test_gitignore_edit_rescopes_the_index(watched: Harness, tmp_path: Path) -> None:
    w, reader, root = watched.watcher, watched.reader, watched.root
    write(root / "generated" / "schema.py", func("generated_schema_marshaller"))
    write(root / "server.log", "log line mentioning lumberjack\n")
    eventually(w, lambda: "generated/schema.py" in indexed(reader), "new file indexed")
    assert "server.log" not in indexed(reader)  # ignored: filtered at the event level

    write(root / ".gitignore", "node_modules/\n*.log\ngenerated/\n")
    eventually(w, lambda: "generated/schema.py" not in indexed(reader), "newly ignored leaves")
    assert "generated/schema.py" not in hit_paths(reader, "generated_schema_marshaller")
    write(root / "generated" / "more.py", func("ignored_while_ignored"))  # not even queued

    write(root / ".gitignore", "node_modules/\n")  # un-ignore generated/ and *.log
    eventually(
        w,
        lambda: {"generated/schema.py", "generated/more.py", "server.log"} <= indexed(reader),
        "un-ignored files come back",
    )
    assert shows(reader, "generated/schema.py", "generated_schema_marshaller")
    assert any(e.get("reason") == "ignore rules changed" for e in watched.events)
    write(root / "later.log", "written after the rules changed\n")  # the live filter too
    eventually(w, lambda: "later.log" in indexed(reader), "event filter uses the new rules")
    # The un-ignored top-level directory is watched again.
    write(root / "generated" / "schema.py", func("generated_schema_v2"))
    eventually(w, lambda: shows(reader, "generated/schema.py", "generated_schema_v2"), "edit")
    assert snapshot(watched.settings.index_dir) == fresh_snapshot(root, tmp_path)


def test_top_level_directories_come_and_go(watched: Harness, tmp_path: Path) -> None:
    w, reader, root = watched.watcher, watched.reader, watched.root
    # Created together with its files, before any watch on it can exist.
    write(root / "plugins" / "alpha" / "alpha.py", func("plugin_alpha_hook"))
    eventually(w, lambda: "plugins/alpha/alpha.py" in indexed(reader), "new top-level dir")
    write(root / "plugins" / "alpha" / "beta.py", func("plugin_beta_hook"))  # watched now
    eventually(w, lambda: "plugins/alpha/beta.py" in indexed(reader), "file in new dir")

    before = watched.embedder.texts_embedded
    os.rename(root / "plugins", root / "extensions")
    eventually(
        w,
        lambda: (
            {"extensions/alpha/alpha.py", "extensions/alpha/beta.py"} <= indexed(reader)
            and not any(p.startswith("plugins/") for p in indexed(reader))
        ),
        "top-level dir renamed",
    )
    assert watched.embedder.texts_embedded == before
    write(root / "extensions" / "alpha" / "gamma.py", func("plugin_gamma_hook"))
    eventually(w, lambda: "extensions/alpha/gamma.py" in indexed(reader), "watch follows rename")

    # Moved out of the tree: no per-file events, the index must still drop them.
    shutil.move(str(root / "extensions"), str(tmp_path / "outside"))
    eventually(
        w, lambda: not any(p.startswith("extensions/") for p in indexed(reader)), "moved out"
    )
    # The same for a nested directory (its watch group reports only the directory).
    shutil.move(str(root / "src" / "util"), str(tmp_path / "outside-util"))
    eventually(w, lambda: "src/util/helpers.py" not in indexed(reader), "nested moved out")
    shutil.rmtree(root / "docs")
    eventually(w, lambda: "docs/guide.md" not in indexed(reader), "rm -rf")
    assert snapshot(watched.settings.index_dir) == fresh_snapshot(root, tmp_path)


def test_many_top_level_directories_share_one_recursive_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codeindex.watch import observers as watch_module

    monkeypatch.setattr(watch_module, "_MAX_DIR_WATCHES", 3)
    root = tmp_path / "repo"
    make_tree(root)  # src/ and docs/: two top-level directories
    h = Harness(root)
    w = h.start()
    try:
        assert w.status()["layout"] == "per-directory" and len(w._observers.native.emitters) == 3
        for name in ("alpha", "beta"):  # four directories > 3: switch at run time
            write(root / name / "m.py", func(f"{name}_module_function"))
        eventually(
            w,
            lambda: (
                w.status()["layout"] == "root" and {"alpha/m.py", "beta/m.py"} <= indexed(h.reader)
            ),
            "the switch to one recursive watch",
        )
        assert len(w._observers.native.emitters) == 1  # one watch, one emitter thread
        write(root / "gamma" / "deep" / "g.py", func("gamma_deep_function"))
        write(root / "node_modules" / "dep" / "index.js", "module.exports = 1;\n")
        shutil.move(str(root / "alpha"), str(tmp_path / "alpha-outside"))
        write(root / "src" / "app.py", func("app_main", "edited under the root watch"))
        eventually(
            w,
            lambda: (
                "gamma/deep/g.py" in indexed(h.reader)
                and "alpha/m.py" not in indexed(h.reader)
                and shows(h.reader, "src/app.py", "edited under the root watch")
            ),
            "changes under the recursive root watch",
        )
        assert not any("node_modules" in p for p in indexed(h.reader))
        w.stop()
        monkeypatch.setattr(watch_module, "_MAX_DIR_WATCHES", 1)
        w = h.start()  # decided at start too
        assert w.status()["layout"] == "root" and len(w._observers.native.emitters) == 1
        assert snapshot(h.settings.index_dir) == fresh_snapshot(root, tmp_path)
    finally:
        h.stop()


def test_constantly_changing_file_is_indexed_within_max_debounce(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    h = Harness(root, debounce_ms=300, max_debounce_ms=800)
    w = h.start()
    target = root / "src" / "hot.py"
    seen = w.status()["updates_applied"]
    started = time.monotonic()
    deadline = started + TIMEOUT
    n = 0
    try:
        # Rewrite far more often than the quiet window: debounce alone would never fire,
        # so the update that ends this loop is the one max_debounce forces.
        while not w.wait_for_update(seen, timeout=0.05):
            n += 1
            target.write_text(func("hot_path_counter", f"revision {n}"))
            assert time.monotonic() < deadline, "no update while the file kept changing"
        waited = time.monotonic() - started
        event = h.events[-1]
        assert event["paths"] == ["src/hot.py"]
        assert n > 5  # it really was still changing
        assert_lag_is_from_the_change(event, h.settings.debounce_ms, waited)
    finally:
        h.stop()


def test_updates_skip_compaction_until_the_tree_is_quiet(harness: Harness) -> None:
    w = harness.start(compact_after_idle=3600)
    index_dir = harness.settings.index_dir
    versions_at_start = Store(index_dir, 384).version_count()
    for i in range(3):
        write(harness.root / "src" / f"probe{i}.py", func(f"compaction_probe_{i}"))
        eventually(
            w, lambda i=i: shows(harness.reader, f"src/probe{i}.py", f"compaction_probe_{i}"), "u"
        )
    st = w.status()
    assert st["uncompacted_updates"] >= 1 and st["compacting"] is False
    assert Store(index_dir, 384).version_count() > versions_at_start  # not compacted yet
    w.stop()  # a flushing stop compacts
    assert Store(index_dir, 384).version_count() <= 2
    assert w.status()["uncompacted_updates"] == 0

    # With a short quiet period the watcher compacts by itself, through CodeIndex.compact.
    w = harness.start(compact_after_idle=0.2)
    compacted = threading.Event()
    real_compact = harness.ci.compact

    def compact(**kwargs: Any) -> bool:
        try:
            return real_compact(**kwargs)
        finally:
            compacted.set()

    harness.ci.compact = compact  # type: ignore[method-assign]
    write(harness.root / "src" / "probe0.py", func("compaction_probe_again"))
    eventually(w, lambda: shows(harness.reader, "src/probe0.py", "compaction_probe_again"), "u")
    assert compacted.wait(TIMEOUT), "the idle compaction did not run"
    assert w.wait_idle(TIMEOUT)  # the worker has finished the compaction's bookkeeping
    assert w.status()["uncompacted_updates"] == 0
    assert Store(index_dir, 384).version_count() <= 2
    assert shows(harness.reader, "src/probe0.py", "compaction_probe_again")


# ---------------------------------------------------------------------------- storms


def _small_files(root: Path, names: list[str], tag: str) -> None:
    for name in names:
        write(root / name, f"def f_{abs(hash(name)) % 10**8}():\n    return '{tag} {name}'\n")


def test_branch_switch_storm_converges_to_a_fresh_index(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    old = [f"pkg{i % 20}/mod{i}.py" for i in range(1500)]
    _small_files(root, old, "main")
    h = Harness(root, event_queue_limit=100)
    w = h.start()
    try:
        # "git checkout": 500 deleted, 500 modified, 1000 created — 2,000 changes at once.
        for name in old[:500]:
            (root / name).unlink()
        _small_files(root, old[500:1000], "feature")
        _small_files(root, [f"feat{i % 10}/new{i}.py" for i in range(1000)], "feature")
        eventually(
            w,
            lambda: len(indexed(h.reader)) == 1000 + 1000 + 5 and w.status()["overflows"] >= 1,
            "the storm to be absorbed",
            timeout=120,
        )
        st = w.status()
        assert st["overflows"] >= 1 and st["reconciles"] >= 2  # startup + overflow
        assert any("overflow" in (e.get("reason") or "") for e in h.events)
        assert snapshot(h.settings.index_dir) == fresh_snapshot(root, tmp_path)
    finally:
        h.stop()


def test_storm_under_ignored_directories_queues_nothing(watched: Harness) -> None:
    w, root = watched.watcher, watched.root
    applied = w.status()["updates_applied"]
    # Top-level node_modules gets no watch at all; a nested one is filtered per event.
    for base in ("node_modules", "src/node_modules"):
        for i in range(1000):
            write(root / base / f"pkg{i % 50}" / f"index{i}.js", "module.exports = 1;\n")
    # Events of one watch arrive in order: once the sentinel is applied, the storm was seen.
    write(root / "src" / "sentinel.py", func("storm_sentinel"))
    eventually(w, lambda: "src/sentinel.py" in indexed(watched.reader), "sentinel")
    st = w.status()
    assert st["updates_applied"] == applied + 1
    assert watched.events[-1]["paths"] == ["src/sentinel.py"]
    assert st["overflows"] == 0 and st["reconciles"] == 1 and st["pending"] == 0
    assert st["events_ignored"] >= 1000  # the nested storm was seen and dropped
    assert not any("node_modules" in p for p in indexed(watched.reader))


# ---------------------------------------------------------------------------- writers


class BlockingProgress:
    """Progress hook that, once armed, parks the watcher inside an update (writer lock
    held) until released."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def phase(self, name: str, total: int | None) -> None:
        if name == "scanning" and self.armed.is_set():
            self.armed.clear()
            self.entered.set()
            assert self.release.wait(TIMEOUT)

    def advance(self, n: int = 1, **info: Any) -> None:
        pass


def test_second_writer_is_refused_while_the_watcher_updates(harness: Harness) -> None:
    progress = BlockingProgress()
    w = harness.start(progress=progress)
    root, index_dir = harness.root, harness.settings.index_dir
    assert not is_locked(index_dir), "the lock must not be held while idle"
    progress.armed.set()
    write(root / "src" / "locked.py", func("written_during_lock"))
    try:
        assert progress.entered.wait(TIMEOUT), "the update never started"
        assert is_locked(index_dir)
        st = w.status()
        assert st["updating"] is True and st["lag_seconds"] > 0
        other = CodeIndex(harness.settings, embedder=FakeEmbedder())
        with pytest.raises(LockBusyError, match="another codeindex process"):
            other.index(wait=False)
        env = {**os.environ, "CODEINDEX_MODEL": FAKE_MODEL}
        proc = subprocess.run(
            [sys.executable, "-m", "codeindex", "index", str(root), "--no-wait"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "another codeindex process" in proc.stderr and "--no-wait" in proc.stderr
        # Readers are never blocked by the writer.
        assert harness.reader.search("app_main", k=1).results
    finally:
        progress.release.set()
    eventually(w, lambda: shows(harness.reader, "src/locked.py", "written_during_lock"), "apply")
    assert not is_locked(index_dir)


def test_watcher_waits_for_another_writer_and_then_applies(watched: Harness) -> None:
    w, reader, root = watched.watcher, watched.reader, watched.root
    lock = WriterLock(watched.settings.index_dir)  # as a `codeindex index` elsewhere would
    lock.acquire(wait=False)
    try:
        write(root / "src" / "queued.py", func("queued_behind_lock"))
        # The watcher publishes watcher.json as it starts to wait, after its status says so.
        published = wait_for_published(
            watched.settings.index_dir,
            lambda st: bool(st.get("waiting_for_lock")),
            "the watcher to wait for the lock",
        )
        assert published["running"]
        assert "another codeindex process" in w.status()["waiting_for_lock"]
        assert "src/queued.py" not in indexed(reader)
    finally:
        lock.release()
    eventually(w, lambda: shows(reader, "src/queued.py", "queued_behind_lock"), "apply")
    assert w.status()["waiting_for_lock"] is None


# ---------------------------------------------------------------------------- fallbacks


def test_polling_mode_follows_changes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    h = Harness(root)
    w = h.start(use_polling=True, poll_interval=0.2)
    try:
        assert w.status()["mode"] == "polling"
        write(root / "src" / "polled.py", func("polled_creation"))
        eventually(w, lambda: shows(h.reader, "src/polled.py", "polled_creation"), "create")
        write(root / "node_modules" / "dep" / "index.js", "module.exports = 'dep';\n")
        (root / "src" / "app.py").unlink()
        eventually(w, lambda: "src/app.py" not in indexed(h.reader), "delete")
        assert not any("node_modules" in p for p in indexed(h.reader))
    finally:
        h.stop()


def test_inotify_watch_limit_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers import inotify_c

    root = tmp_path / "repo"
    make_tree(root)
    write(root / "vendor" / "lib.py", func("vendored_library"))
    write(root / "third" / "deep" / "mod.py", func("third_party_module"))
    real_add = inotify_c.InotifyFD.add_callback
    exhausted = [str(root / "vendor"), str(root / "third" / "deep"), str(root / "src" / "late")]

    def add_callback(self, path, mask, callback, id_):
        p = os.fsdecode(path)
        if any(p == e or p.startswith(e + "/") for e in exhausted):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return real_add(self, path, mask, callback, id_)

    monkeypatch.setattr(inotify_c.InotifyFD, "add_callback", add_callback)
    h = Harness(root)
    w = h.start(poll_interval=0.2)
    try:
        st = w.status()
        # vendor/ failed at its own root, third/ on a subdirectory (watchdog swallows that).
        assert st["polling_fallback"] == ["third", "vendor"], st
        assert st["mode"] == "native"
        write(root / "vendor" / "lib.py", func("vendored_library_patched"))
        write(root / "third" / "deep" / "mod.py", func("third_party_patched"))
        eventually(
            w,
            lambda: (
                shows(h.reader, "vendor/lib.py", "vendored_library_patched")
                and shows(h.reader, "third/deep/mod.py", "third_party_patched")
            ),
            "changes in polled subtrees",
        )
        # A subdirectory created later that cannot get a watch: src/ switches to polling.
        write(root / "src" / "late" / "late.py", func("created_past_the_limit"))
        eventually(w, lambda: "src" in w.status()["polling_fallback"], "runtime fallback")
        eventually(w, lambda: "src/late/late.py" in indexed(h.reader), "rescanned after fallback")
        write(root / "src" / "late" / "late.py", func("edited_while_polled"))
        eventually(w, lambda: shows(h.reader, "src/late/late.py", "edited_while_polled"), "edit")
        assert (
            "inotify watch limit"
            in h.ci.status(check_stale=False).watcher["polling_reasons"]["src"]
        )
    finally:
        h.stop()


def test_kernel_queue_overflow_triggers_a_reconcile(watched: Harness) -> None:
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    w = watched.watcher
    fd = w._observers.native_fd
    assert fd is not None
    reconciles = w.status()["reconciles"]
    fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))  # as the kernel
    eventually(w, lambda: w.status()["reconciles"] == reconciles + 1, "reconcile")
    assert "overflowed" in watched.events[-1]["reason"]
    # Watching still works after watchdog rebuilt its watches.
    write(watched.root / "src" / "after.py", func("after_kernel_overflow"))
    eventually(w, lambda: shows(watched.reader, "src/after.py", "after_kernel_overflow"), "edit")


class _WatchGroup:
    """Stands in for one of watchdog's inotify watch groups (only the callback API)."""

    def on_event(self, event: Any) -> None:
        pass

    def on_watch_deleted(self, wd: Any) -> None:
        pass

    def on_queue_overflow(self) -> None:
        pass


def test_a_directory_registered_twice_raises_no_warning(tmp_path: Path) -> None:
    # watchdog registers a subdirectory made by `mkdir -p` twice (by listing its new
    # parent and by its own IN_CREATE), putting the same callback back; it used to warn
    # "Callback with id ... already exists ... Overwritten" by timing. Register twice
    # on purpose: the warning must not surface.
    from watchdog.observers.inotify_c import InotifyConstants

    from codeindex.watch.inotify import _InotifyTap, native_observer

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _observer, fd = native_observer(lambda path: None, lambda: None)
        try:
            tap = _InotifyTap(fd, lambda path: None, lambda: None)
            group = _WatchGroup()
            wds = {tap.add_callback(os.fsencode(tmp_path), InotifyConstants.IN_CREATE, group, 1)}
            wds.add(tap.add_callback(os.fsencode(tmp_path), InotifyConstants.IN_CREATE, group, 1))
        finally:
            fd.stop()
            fd.join(timeout=10)
    assert len(wds) == 1  # one watch, registered twice
    assert [str(w.message) for w in seen] == []


# ---------------------------------------------------------------------------- CLI


def test_cli_watch_json_lines_and_sigint_flush(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    index_dir = root / ".codeindex"
    env = {
        **os.environ,
        "CODEINDEX_MODEL": FAKE_MODEL,
        "CODEINDEX_VERSION_RETENTION_SECONDS": "0",
        # Debounce longer than the test: the change is still pending at SIGINT.
        "CODEINDEX_MAX_DEBOUNCE_MS": "600000",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codeindex",
            "watch",
            str(root),
            "--json",
            "--debounce-ms",
            "600000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
    try:
        stdout.wait_for(is_event("reconcile"), "the startup reconcile", timeout=120)
        write(root / "src" / "pending.py", func("pending_at_sigint"))
        state = wait_for_published(
            index_dir, lambda st: st.get("pending", 0) >= 1, "the change to be pending"
        )
        assert state["running"] and state["pid"] == proc.pid and state["updates_applied"] == 1
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = stdout.text(), stderr.text()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in lines] == ["reconcile", "update"], out
    assert lines[0]["added"] == 5 and lines[0]["reason"] == "startup"
    update = lines[1]
    assert update["paths"] == ["src/pending.py"] and update["added"] == 1
    assert update["chunks_embedded"] == 1 and update["chunks_reused"] == 0
    assert update["lag_seconds"] > 0
    assert runstate.watcher_state(index_dir)["running"] is False
    assert snapshot(index_dir) == fresh_snapshot(root, tmp_path)


@pytest.mark.model
def test_cli_watch_unloads_the_idle_model_and_reloads_it_for_the_next_change(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    env = {
        **os.environ,
        "CODEINDEX_VERSION_RETENTION_SECONDS": "0",  # the real bundled model
        "CODEINDEX_IDLE_UNLOAD_MINUTES": "0.03",  # unloaded after 1.8 s idle
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeindex", "-v", "watch", str(root), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
    server = psutil.Process(proc.pid)

    def loaded(line: str) -> bool:
        return "model all-MiniLM-L6-v2 loaded" in line

    try:
        stderr.wait_for(lambda line: "model unloaded" in line, "the idle unload", timeout=180)
        assert sum(map(loaded, stderr.lines)) == 1  # logged before the unload, same pipe
        # The peak (the model loaded, embedding the startup reconcile) against now.
        assert server.memory_info().rss < peak_rss(proc.pid) - 40 * 2**20
        write(root / "src" / "later.py", func("edited_after_idle"))
        stdout.wait_for(is_event("update"), "the update after the reload", timeout=120)
        stderr.wait_for(loaded, "the model to load again", timeout=TIMEOUT, nth=2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, log = stdout.text(), stderr.text()
    assert proc.returncode == 0, log[-2000:]
    assert sum(loaded(line) for line in log.splitlines()) == 2
    update = [json.loads(line) for line in out.splitlines()][-1]
    assert update["paths"] == ["src/later.py"] and update["chunks_embedded"] == 1
