"""Chunks-table upkeep: an update costs in proportion to the change, never the table.

The full-text index gains a delta segment per update instead of being merged, big
fragments are not rewritten, and too many segments trigger one bounded rebuild.
"""

from __future__ import annotations

from pathlib import Path

import lance
import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.service import CodeIndex
from codeindex.storage import Store, maintenance, store
from tests.conftest import fake_settings, open_store


def _write(root: Path, n: int, tag: str) -> None:
    pkg = root / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (pkg / f"{tag}{i}.py").write_text(
            f"def {tag}_function_{i}(x):\n    return x * {i}  # {tag} marker {i}\n"
        )


def _chunks(ci: CodeIndex) -> lance.LanceDataset:
    return lance.dataset(str(ci.settings.index_dir / "chunks.lance"))


def _segments(ds: lance.LanceDataset) -> int:
    return len(next(ix for ix in ds.describe_indices() if ix.name == store.FTS_INDEX).segments)


def _hits(ci: CodeIndex, query: str) -> list[str]:
    return [h.path for h in ci.search(query, k=5, semantic=False).results][:1]


def _found(st: Store, query: str) -> list[str]:
    """The path of the best full-text match, read through ``st`` itself."""
    return [r["path"] for r in st.text_search(query, 5, with_text=False)][:1]


def test_update_adds_a_delta_segment_and_leaves_big_fragments_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "TARGET_ROWS", 64)  # "big" = 64 rows here
    root = tmp_path / "repo"
    _write(root, 150, "base")
    ci = CodeIndex(fake_settings(root), embedder=FakeEmbedder())
    ci.index()
    before = _chunks(ci)
    big = {f.fragment_id for f in before.get_fragments() if f.count_rows() >= 64}
    assert big and _segments(before) == 1

    _write(root, 3, "fresh")
    ci.index()
    after = _chunks(ci)
    # The update's rows got their own full-text segment; the first one was not merged.
    assert _segments(after) == 2
    assert big <= {f.fragment_id for f in after.get_fragments()}  # not rewritten
    assert _hits(ci, "fresh_function_2") == ["pkg/fresh2.py"]
    assert _hits(ci, "base_function_77") == ["pkg/base77.py"]
    # Old versions are still cleaned up (retention 0 in these settings).
    assert len(after.versions()) == 1
    ci.close()


def test_too_many_segments_rebuild_the_full_text_index_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "MAX_FTS_SEGMENTS", 0)  # rebuild above 2 segments
    root = tmp_path / "repo"
    _write(root, 20, "base")
    ci = CodeIndex(fake_settings(root), embedder=FakeEmbedder())
    ci.index()
    for round_ in range(3):
        _write(root, 1, f"round{round_}")
        ci.index()
        assert _segments(_chunks(ci)) <= 2
    for query, path in (
        ("round2_function_0", "pkg/round20.py"),
        ("base_function_7", "pkg/base7.py"),
    ):
        assert _hits(ci, query) == [path]
    ci.close()


def test_segments_built_here_match_what_lancedb_would_build(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    db = lancedb.connect(tmp_path)
    data = pa.table({"t": [f"getUserName running runs {i}" for i in range(50)]})
    db.create_table("by_lancedb", data).create_index("t", config=FTS(), name="fts")
    db.create_table("by_us", data)
    maintenance.index_fts(tmp_path / "by_us.lance", "fts", "t")

    def params(name: str) -> dict:
        stats = lance.dataset(str(tmp_path / f"{name}.lance")).stats.index_stats("fts")
        return stats["segments"][0]["params"]

    assert params("by_us") == params("by_lancedb")
    hits = db.open_table("by_us").search("run", query_type="fts").limit(50).to_list()
    assert len(hits) == 50  # stemmed like LanceDB's own index: "run" finds "running"


def test_upkeep_starts_from_empty_caches_and_the_store_keeps_working(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _write(root, 40, "cached")
    ci = CodeIndex(fake_settings(root), embedder=FakeEmbedder())
    ci.index()
    st = open_store(ci)
    assert _found(st, "cached_function_7") == ["pkg/cached7.py"]
    filled = st.session.size_bytes  # reads filled LanceDB's caches (indexes included)
    st.drop_caches()
    assert st.session.size_bytes < filled / 2  # only the reopened tables' manifests
    _write(root, 1, "later")
    # Every run's upkeep starts by dropping the writer's caches (Store.optimize): this
    # second run writes, compacts and reads on after the first run's drop.
    assert ci.index().added == 1
    assert _hits(ci, "later_function_0") == ["pkg/later0.py"]
    # The store whose caches were dropped here reads on, new commits included.
    assert _found(st, "later_function_0") == ["pkg/later0.py"]
    assert _found(st, "cached_function_7") == ["pkg/cached7.py"]
