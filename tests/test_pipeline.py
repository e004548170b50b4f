"""Incremental indexing with the fast fake embedder and LanceDB on disk."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from codeindex.embedding import EmbedError, FakeEmbedder
from codeindex.service import CodeIndex
from codeindex.storage import Filter
from codeindex.storage import store as store_module
from codeindex.types import IndexState, NullProgress
from tests.conftest import INDEXABLE, UTC_ISO, fake_settings, open_store


def _paths(ci: CodeIndex, skipped: bool = False) -> list[str]:
    out, cursor = [], ""
    while True:
        page = ci.list_files(page_size=500, cursor=cursor, skipped=skipped)
        out += [f.path for f in page.files]
        cursor = page.next_cursor
        if not cursor:
            return sorted(out)


def test_first_index_counts_and_exclusions(sample_repo: Path) -> None:
    emb = FakeEmbedder()
    ci = CodeIndex(fake_settings(sample_repo), embedder=emb)
    rep = ci.index()
    assert rep.added == len(INDEXABLE)
    assert rep.skipped == {"binary": 1}
    assert set(_paths(ci)) == INDEXABLE  # no .env, build/, *.log, binary
    assert _paths(ci, skipped=True) == ["storage/blob.dat"]
    store = open_store(ci)
    assert store.count_chunks() == rep.chunks_written > len(INDEXABLE)
    assert store.count_chunks(Filter(embedded=False)) == 0
    assert rep.chunks_embedded == emb.texts_embedded > 0
    assert not rep.failed


def test_rerun_unchanged_embeds_nothing(fake_index: CodeIndex) -> None:
    emb = fake_index.embedder
    before = emb.texts_embedded
    rep = fake_index.index()
    assert (rep.added, rep.updated, rep.deleted) == (0, 0, 0)
    assert rep.unchanged == len(INDEXABLE) + 1  # + the skipped binary
    assert rep.chunks_embedded == 0 and emb.texts_embedded == before


def test_lookups_read_the_files_table_as_the_run_found_it(
    sample_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's lookups never scan what the run itself appended: a first run makes none,
    a later one reads the version it started from."""
    looked_up: list[int] = []
    real_lookup = store_module._lookup_files

    def counting(table, paths):
        looked_up.append(table.version)
        return real_lookup(table, paths)

    monkeypatch.setattr(store_module, "_lookup_files", counting)
    ci = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    assert ci.index().added == len(INDEXABLE)
    assert looked_up == []  # empty table at the start: nothing to look up

    (sample_repo / "new_module.py").write_text("def brand_new():\n    return 1\n")
    start = open_store(ci).files_version()
    rep = ci.index()
    assert rep.added == 1 and rep.unchanged == len(INDEXABLE) + 1
    assert looked_up and set(looked_up) == {start}


def test_file_snapshot_does_not_see_later_writes(fake_index: CodeIndex) -> None:
    store = open_store(fake_index)
    snap = store.file_snapshot()
    old = snap.get(["auth/tokens.py"])["auth/tokens.py"]
    store.upsert_files([dataclasses.replace(old, path="later.py")])
    assert snap.get(["later.py", "auth/tokens.py"]).keys() == {"auth/tokens.py"}
    assert store.get_files(["later.py"])["later.py"].content_hash == old.content_hash


def test_touch_without_content_change_embeds_nothing(fake_index: CodeIndex) -> None:
    path = fake_index.settings.root / "net/retry.ts"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rep = fake_index.index()
    assert rep.updated == 0 and rep.chunks_embedded == 0


def test_edit_reembeds_only_changed_chunks(fake_index: CodeIndex) -> None:
    store = open_store(fake_index)
    path = fake_index.settings.root / "auth/tokens.py"
    old_chunks = store.chunks_of("auth/tokens.py")
    assert len(old_chunks) >= 3
    text = path.read_text()
    path.write_text(
        text.replace('raise TokenError("bad signature")', 'raise TokenError("forged signature")')
    )
    emb = fake_index.embedder
    before = emb.texts_embedded
    rep = fake_index.index()
    assert rep.updated == 1 and rep.added == 0
    assert rep.chunks_embedded == emb.texts_embedded - before == 1
    new_chunks = store.chunks_of("auth/tokens.py")
    assert len(new_chunks) == len(old_chunks)
    assert any("forged signature" in c["text"] for c in new_chunks)
    assert store.count_chunks(Filter(path="auth/tokens.py", embedded=False)) == 0


def test_delete_removes_file_and_chunks(fake_index: CodeIndex) -> None:
    (fake_index.settings.root / "storage/lru.rs").unlink()
    rep = fake_index.index()
    assert rep.deleted == 1
    store = open_store(fake_index)
    assert store.count_chunks(Filter(path="storage/lru.rs")) == 0
    assert "storage/lru.rs" not in _paths(fake_index)
    hits = fake_index.search("LruCache evict least recently used", k=20).results
    assert all(h.path != "storage/lru.rs" for h in hits)


def test_newly_ignored_file_leaves_index(fake_index: CodeIndex) -> None:
    root = fake_index.settings.root
    (root / ".gitignore").write_text("build/\n*.log\ntools/\n")
    rep = fake_index.index()
    assert rep.deleted == 1
    assert "tools/backup.sh" not in _paths(fake_index)


def test_identical_chunks_embedded_once(sample_repo: Path) -> None:
    # Five identical windows of one file: one embedding input (path + text), embedded once.
    block = "alpha beta gamma\ndelta epsilon zeta\n"
    (sample_repo / "dup.txt").write_text(block * 5)
    # The same text in a file of another name is another input: its header names its file.
    (sample_repo / "copy.txt").write_text(block)
    emb = FakeEmbedder()
    ci = CodeIndex(fake_settings(sample_repo, max_chunk_lines=2), embedder=emb)
    rep = ci.index()
    store = open_store(ci)
    assert store.count_chunks(Filter(path="dup.txt")) == 5
    pairs = list(store.iter_chunk_hashes())
    distinct = {h for _, h in pairs}
    assert rep.chunks_embedded == emb.texts_embedded == len(distinct)
    assert rep.chunks_reused >= 4
    dup = {h for p, h in pairs if p == "dup.txt"}
    copy = {h for p, h in pairs if p == "copy.txt"}
    assert len(dup) == 1 and copy and dup != copy
    assert store.count_chunks(Filter(embedded=False)) == 0


def test_repeated_updates_do_not_grow_versions(fake_index: CodeIndex) -> None:
    path = fake_index.settings.root / "web/src/csv.js"
    store = open_store(fake_index)
    sizes = []
    for i in range(6):
        path.write_text(path.read_text() + f"\n// edit {i}\n")
        fake_index.index(paths=["web/src/csv.js"])
        sizes.append(store.disk_bytes())
    assert store.version_count() <= 2
    # Disk settles: the last updates do not keep adding what the first ones did.
    assert sizes[-1] < sizes[0] * 1.5


def test_generated_files_are_skipped_and_come_back_incrementally(sample_repo: Path) -> None:
    lock = "".join(f'[[package]]\nname = "lockpkg_{i}"\nversion = "1.{i}"\n' for i in range(300))
    (sample_repo / "uv.lock").write_text(lock)
    (sample_repo / "logo.svg").write_text('<svg><path d="M0 0h24"/></svg>\n')
    ci = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    rep = ci.index()
    assert rep.skipped == {"binary": 1, "generated": 2}
    assert not rep.failed  # skipped on purpose, not a failure (exit code 0)
    assert _paths(ci, skipped=True) == ["logo.svg", "storage/blob.dat", "uv.lock"]
    page = ci.list_files(skipped=True).files
    assert {f.path: f.reason for f in page}["uv.lock"] == "generated"
    assert ci.status().skipped == {"binary": 1, "generated": 2}
    assert open_store(ci).count_chunks(Filter(path="uv.lock")) == 0

    # The setting brings them back on the next run, without a rebuild.
    on = CodeIndex(fake_settings(sample_repo, index_generated=True), embedder=FakeEmbedder())
    assert on.status().state != IndexState.INCOMPATIBLE
    rep = on.index()
    assert (rep.updated, rep.deleted, rep.chunks_embedded > 0) == (2, 0, True)
    assert {"uv.lock", "logo.svg"} <= set(_paths(on))
    assert on.search("lockpkg_123", k=1).results[0].path == "uv.lock"

    # A .codeindexignore negation keeps one of them when the setting is off again.
    (sample_repo / ".codeindexignore").write_text("!logo.svg\n")
    off = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    rep = off.index()
    assert rep.skipped == {"generated": 1}
    assert (rep.added, rep.updated) == (1, 0)  # the .codeindexignore; logo.svg is unchanged
    assert "logo.svg" in _paths(off) and "uv.lock" in _paths(off, skipped=True)
    assert open_store(off).count_chunks(Filter(path="uv.lock")) == 0


def test_partial_update_by_paths(fake_index: CodeIndex) -> None:
    root = fake_index.settings.root
    (root / "new_module.py").write_text("def brand_new_function():\n    return 'fresh'\n")
    (root / "net/retry.ts").unlink()
    rep = fake_index.index(paths=["new_module.py", "net/retry.ts"])
    assert rep.added == 1 and rep.deleted == 1
    assert "new_module.py" in _paths(fake_index)
    assert "net/retry.ts" not in _paths(fake_index)


def _commits_to_delete(root: Path, n: int) -> tuple[int, int]:
    """(chunk-table, files-table) commits of one update that removes ``n`` files (what
    the watcher hands over when a folder goes)."""
    for i in range(n):
        (root / "gone" / f"m{i}.py").parent.mkdir(parents=True, exist_ok=True)
        (root / "gone" / f"m{i}.py").write_text(f"def gone_{i}():\n    return {i}\n")
    ci = CodeIndex(fake_settings(root), embedder=FakeEmbedder())
    ci.index()
    store = open_store(ci)
    chunks, files = store.versions_since_open(), store.files_version()
    paths = [f"gone/m{i}.py" for i in range(n)]
    for p in paths:
        (root / p).unlink()
    rep = ci.index(paths=paths, compact=False)
    assert rep.deleted == n
    assert not set(paths) & set(_paths(ci))
    assert store.count_chunks(Filter(path_prefix="gone/")) == 0
    return store.versions_since_open() - chunks, store.files_version() - files


def test_deleting_many_files_costs_the_commits_of_one(tmp_path: Path) -> None:
    few = _commits_to_delete(tmp_path / "few", 2)
    many = _commits_to_delete(tmp_path / "many", 20)
    assert many == few == (1, 1)


class _FailingEmbedder(FakeEmbedder):
    """Cannot embed texts containing a marker, as if they ran out of memory alone."""

    def embed(self, texts: list[str]) -> np.ndarray:
        bad = [i for i, t in enumerate(texts) if "UNEMBEDDABLE" in t]
        if bad:
            raise EmbedError("out of memory", bad)
        return super().embed(texts)


def test_unembeddable_chunk_is_reported_not_zero_filled(sample_repo: Path) -> None:
    (sample_repo / "huge.py").write_text("def cursed():\n    return 'UNEMBEDDABLE'\n")
    ci = CodeIndex(fake_settings(sample_repo), embedder=_FailingEmbedder())
    rep = ci.index()
    assert [f["path"] for f in rep.failed] == ["huge.py"]
    store = open_store(ci)
    assert store.count_chunks(Filter(path="huge.py", embedded=False)) == 1
    assert store.count_embed_failed() == 1
    assert ci.status().embed_failed == 1
    # Other files are fully embedded; the next run does not retry forever.
    assert store.count_chunks(Filter(embedded=False)) == 1
    assert ci.index().chunks_embedded == 0


def test_no_embed_then_embed_fills_vectors(sample_repo: Path) -> None:
    ci = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    ci.index(embed=False)
    res = ci.search("validate_jwt")
    assert res.coverage == 0.0
    assert res.results[0].path == "auth/tokens.py"  # full text works at once
    ci.index()
    assert ci.search("validate_jwt").coverage == 1.0


def test_big_file_is_streamed_and_searchable(sample_repo: Path) -> None:
    lines = [f"record_{i:06d} = value_{i}" for i in range(20_000)]
    lines[12_345] = "needle_identifier_xyzzy = 'found me'"
    (sample_repo / "big.txt").write_text("\n".join(lines) + "\n")
    settings = fake_settings(sample_repo, stream_threshold_mb=0.05)
    ci = CodeIndex(settings, embedder=FakeEmbedder())
    rep = ci.index()
    assert not rep.failed
    hit = ci.search("needle_identifier_xyzzy", k=1).results[0]
    assert hit.path == "big.txt"
    assert hit.start_line <= 12_346 <= hit.end_line
    rec = open_store(ci).get_files(["big.txt"])["big.txt"]
    assert rec.content_hash and rec.chunk_count > 10


def test_incompatible_index_refuses_search_then_rebuilds(sample_repo: Path) -> None:
    from codeindex.errors import IncompatibleIndexError

    CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder()).index()
    changed = CodeIndex(fake_settings(sample_repo, max_chunk_lines=20), embedder=FakeEmbedder())
    assert changed.status().state == IndexState.INCOMPATIBLE
    with pytest.raises(IncompatibleIndexError, match="rebuild"):
        changed.search("jwt")
    changed.index()
    assert changed.status().state == IndexState.READY
    assert changed.search("validate_jwt").results


def test_embedding_input_names_the_file_not_its_folders() -> None:
    from codeindex.types import Chunk, embedding_input, file_title

    assert file_title("src/security/oauth2.py") == "oauth2.py"
    assert file_title("axum/src/routing/mod.rs") == "routing/mod.rs"  # index-like: folder too
    assert file_title("Makefile") == "Makefile"
    assert embedding_input("a/b/tokens.py", "validate", "def validate(): ...") == (
        "tokens.py validate\ndef validate(): ..."
    )
    moved = Chunk("x/tokens.py", 1, 2, "code", symbol="f")
    assert moved.content_hash == Chunk("y/z/tokens.py", 1, 2, "code", symbol="f").content_hash
    assert moved.content_hash != Chunk("x/other.py", 1, 2, "code", symbol="f").content_hash


STATUS_KEYS = [
    "root",
    "index_dir",
    "state",
    "model",
    "dimension",
    "files",
    "chunks",
    "chunks_with_vectors",
    "coverage",
    "skipped",
    "disk_bytes",
    "last_indexed_at",
    "incompatible_reason",
    "memory",
]


def test_status_is_typed_and_keeps_its_json_shape(tmp_path: Path, fake_index: CodeIndex) -> None:
    missing = CodeIndex(fake_settings(tmp_path), embedder=FakeEmbedder()).status()
    assert missing.state is IndexState.MISSING and missing.embed_failed is None
    assert list(missing.as_dict()) == [*STATUS_KEYS, "watcher"]  # no run, no embed_failed
    assert missing.as_dict()["state"] == "missing"

    ready = fake_index.status()
    assert ready.state is IndexState.READY and ready.coverage == 1.0
    out = ready.as_dict()
    assert list(out) == [*STATUS_KEYS, "watcher", "embed_failed"]
    assert out["state"] == "ready" and out["files"] == 12 and out["embed_failed"] == 0
    json.dumps(out)  # plain JSON values only

    # While this process runs an index, the status says so and carries its progress.
    seen = []

    class StatusDuringRun(NullProgress):
        def phase(self, name: str, total: int | None) -> None:
            if name == "embedding":
                seen.append(fake_index.status(check_stale=False))

    (fake_index.settings.root / "net/retry.ts").write_text("// changed\n")
    fake_index.index(progress=StatusDuringRun())
    (during,) = seen
    assert during.state is IndexState.INDEXING
    assert during.run is not None and during.run.phase == "embedding"
    out = during.as_dict()
    assert list(out) == [*STATUS_KEYS, "run", "watcher", "embed_failed"]
    assert list(out["run"]) == ["phase", "done", "total", "rate_per_s", "eta_seconds", "started_at"]
    assert UTC_ISO.fullmatch(during.run.started_at)
    assert fake_index.status().run is None
