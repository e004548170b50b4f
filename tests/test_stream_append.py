"""A streamed big file is appended in one commit, batch by batch as it is read, and
then replaces its old rows, whose vectors the new batches could still reuse.

One commit per batch grew the table's manifest by a fragment per batch and copied it
on every commit, so RSS crept over a 2 GB file and old manifests piled up on disk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import lance
import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.service import CodeIndex
from codeindex.storage import Filter, Store, maintenance
from codeindex.types import Chunk, ChunkRow
from tests.conftest import fake_settings, open_store

DIM = 8


def _batch(start: int, rows: int, path: str = "huge.txt") -> list[ChunkRow]:
    return [
        ChunkRow(f"{path}:{i}", Chunk(path, i, i, f"line {i}", "text", "", "block", f"h{i}"), 2)
        for i in range(start, start + rows)
    ]


def _batches(total: int, size: int = 4096, path: str = "huge.txt") -> Iterator[list[ChunkRow]]:
    for start in range(0, total, size):
        yield _batch(start, min(size, total - start), path)


def _dataset(store: Store) -> lance.LanceDataset:
    return lance.dataset(str(store.index_dir / "chunks.lance"))


def _data_files(store: Store) -> set[str]:
    return {p.name for p in (store.index_dir / "chunks.lance" / "data").iterdir()}


def test_stream_is_one_commit_in_fragments_of_target_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "ix", DIM, create=True)
    total = maintenance.TARGET_ROWS + 1000
    before = _dataset(store).version
    store.replace_streamed("huge.txt", _batches(total))
    ds = _dataset(store)
    assert ds.version - before <= 2  # the append and the old rows' delete, for 9 batches
    assert [f.count_rows() for f in ds.get_fragments()] == [maintenance.TARGET_ROWS, 1000]
    assert store.count_chunks() == total  # the writer's own handle sees the commit
    assert store.chunks_of("huge.txt", limit=1)


def test_stream_replaces_only_the_old_rows_of_its_path(tmp_path: Path) -> None:
    store = Store(tmp_path / "ix", DIM, create=True)
    store.replace_streamed("other.txt", _batches(300, path="other.txt"))
    store.replace_streamed("huge.txt", _batches(5000))
    store.replace_streamed("huge.txt", _batches(700, size=256))
    assert store.count_chunks(Filter(path="huge.txt")) == 700
    assert store.count_chunks(Filter(path="other.txt")) == 300
    assert sorted(r["start_line"] for r in store.chunks_of("huge.txt")) == list(range(700))


def test_failed_stream_commits_nothing_and_leaves_no_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "ix", DIM, create=True)
    store.replace_streamed("huge.txt", _batches(100))
    version, kept = _dataset(store).version, _data_files(store)

    def vanishing() -> Iterator[list[ChunkRow]]:
        # Three fragments' rows, so finished data files were on disk before the error.
        yield from _batches(3 * maintenance.TARGET_ROWS)
        raise FileNotFoundError("huge.txt vanished")

    with pytest.raises(FileNotFoundError, match="vanished"):  # itself, not Lance's error
        store.replace_streamed("huge.txt", vanishing())
    assert _dataset(store).version == version
    assert store.count_chunks() == 100  # the old rows stay
    assert _data_files(store) == kept


class _CtrlCMidFile(FakeEmbedder):
    """Presses Ctrl-C (sets ``stop``) once the chunker has counted ``after`` chunks'
    tokens: the stream notices at its next batch boundary."""

    def __init__(self, stop: threading.Event, after: int) -> None:
        super().__init__()
        self.stop, self.after, self.calls = stop, after, 0

    def count_tokens(self, text: str) -> int:
        self.calls += 1
        if self.calls >= self.after:
            self.stop.set()
        return super().count_tokens(text)


def test_stopped_stream_keeps_what_it_wrote_and_the_next_run_completes_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    lines = [f"record_{i:06d} = value_{i}" for i in range(20_000)]
    (root / "big.txt").write_text("\n".join(lines) + "\n")
    settings = fake_settings(root, stream_threshold_mb=0.05, write_batch_rows=64)
    stop = threading.Event()
    first = CodeIndex(settings, embedder=_CtrlCMidFile(stop, after=200))
    rep = first.index(embed=False, stop=stop)
    assert rep.interrupted
    store = open_store(first)
    assert store.get_files(["big.txt"])["big.txt"].content_hash == ""  # incomplete
    partial = store.count_chunks()
    assert partial > 0  # what it wrote before the stop is kept

    ci = CodeIndex(settings, embedder=FakeEmbedder())
    assert not ci.index(embed=False).interrupted
    store = open_store(ci)
    rec = store.get_files(["big.txt"])["big.txt"]
    assert rec.content_hash and rec.chunk_count > partial
    assert store.count_chunks() == rec.chunk_count  # the redo replaced the partial rows


def test_streamed_copy_reuses_the_stored_vectors_of_identical_chunks(tmp_path: Path) -> None:
    # The stream's batches are built while Lance pulls them, and each one looks up
    # stored vectors in the same table: the two must not block each other.
    root = tmp_path / "tree"
    root.mkdir()
    text = "".join(f"record_{i:06d} = value_{i}\n" for i in range(20_000))
    (root / "big.txt").write_text(text)
    settings = fake_settings(root, stream_threshold_mb=0.05, write_batch_rows=64)
    ci = CodeIndex(settings, embedder=FakeEmbedder())
    first = ci.index()
    assert first.chunks_embedded > 64 and not first.failed
    # A copy in another folder under the same name: the same embedding inputs.
    (root / "copies").mkdir()
    (root / "copies" / "big.txt").write_text(text)
    rep = ci.index()
    assert rep.added == 1 and not rep.failed
    assert rep.chunks_embedded == 0
    assert rep.chunks_reused == first.chunks_embedded  # every chunk, from the lookup
    assert open_store(ci).count_chunks(Filter(embedded=False)) == 0


def test_restreamed_file_keeps_the_vectors_of_its_unchanged_chunks(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    big = root / "big.txt"
    big.write_text("".join(f"record_{i:06d} = value_{i}\n" for i in range(20_000)))
    settings = fake_settings(root, stream_threshold_mb=0.05, write_batch_rows=64)
    ci = CodeIndex(settings, embedder=FakeEmbedder())
    first = ci.index()
    assert first.chunks_embedded > 64 and not first.failed
    with big.open("a") as f:
        f.write("appended_marker_line = 1\n")
    rep = ci.index()
    assert rep.updated == 1 and not rep.failed
    assert rep.chunks_embedded <= 2  # the changed last chunk (and a new one, if split)
    assert rep.chunks_reused >= first.chunks_embedded - 1
    store = open_store(ci)
    assert store.count_chunks() == store.get_files(["big.txt"])["big.txt"].chunk_count
    assert store.count_chunks(Filter(embedded=False)) == 0
    assert ci.search("appended_marker_line", k=1).results[0].path == "big.txt"
