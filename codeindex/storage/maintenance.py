"""Compaction and index upkeep of the chunks table, in memory bounded by the change,
and the one-commit append of a streamed big file.

LanceDB's ``Table.optimize()`` compacts with fixed options and merges every index
into one: it rewrites any fragment under a million rows together with new ones, and
merging or remapping the full-text index loads all of it. Measured on a 366,000-chunk
table: 73 s and a 1.7 GB peak to fold in 20,000 new rows, and a 2 GB peak to merge two
full-text segments — on every incremental update. So the chunks table is maintained
here, through the Lance format library (``pylance``, the same Lance release LanceDB
embeds), with explicit options:

* compaction merges only small fragments, into fragments of about
  :data:`TARGET_ROWS` rows, and never materialises deletions in big fragments (doing so
  would remap the full-text index over all their rows);
* the full-text index gets new segments for the new rows, built in groups of
  :data:`GROUP_ROWS` rows (one build's memory grows with its rows even under LanceDB's
  memory limit), never a merge; the scalar (BTree) indexes, which are small, are merged;
* once the full-text index has many more segments than a fresh build would make, or a
  third of it covers only rows that are gone (the first run rewrites every row when it
  adds its vector), the caller rebuilds it from scratch, group by group: bounded
  memory, time ∝ table size, rarely.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

TARGET_ROWS = 32_768  # rows per compacted fragment: bounds what one compaction rewrites
_MAX_COMPACTIONS = 10_000  # a safety stop for the compaction loop
# Rows per full-text segment build. One build's memory grows with its rows (about
# +230 MiB for 123k rows, +360 MiB for 366k, whatever the memory limit), so builds go
# in groups: measured +165 MiB per 32k-row group, the same for every group.
GROUP_ROWS = 32_768
MAX_FTS_SEGMENTS = 32  # beyond twice the segments a fresh build would have, plus this
# LanceDB's FTS() defaults, so segments built here match an index LanceDB would build.
FTS_PARAMS: dict[str, Any] = {
    "with_position": False,
    "base_tokenizer": "simple",
    "language": "English",
    "max_token_length": 40,
    "lower_case": True,
    "stem": True,
    "remove_stop_words": True,
    "ascii_folding": True,
}
_CACHE_BYTES = 32 * 1024 * 1024
# Column data a streamed append buffers before writing pages (the writer's default is
# 8 MiB per column, about 110 MiB for the chunks table's 14 columns). 512 MB streamed,
# RSS off its median: 4 MiB → 1.4%, 1 MiB → 1.3% (not worth pages a quarter the size).
STREAM_BUFFER_BYTES = 4 * 1024 * 1024


def _open(table_dir: Path) -> Any:
    # pylance, imported only here: writers only. Its import costs ~20 MiB; once it has
    # worked, its library's pages count ~75 MiB more in RSS (measured).
    import lance

    return lance.dataset(
        str(table_dir), index_cache_size_bytes=_CACHE_BYTES, metadata_cache_size_bytes=_CACHE_BYTES
    )


def append_stream(table_dir: Path, reader: Any) -> int:
    """Append every batch of ``reader`` (a ``pyarrow.RecordBatchReader`` with the
    table's schema) in ONE commit, pulling batches as it writes them. Returns a
    fragment id: rows the table held before have lower ones, appended rows do not.

    Memory stays at one batch plus :data:`STREAM_BUFFER_BYTES` however many batches
    come, and rows go into fragments of :data:`TARGET_ROWS` (what compaction makes).
    One commit per batch instead would grow the manifest by a fragment per batch and
    copy it on every commit: measured over a 512 MB file, RSS crept and swung by
    ±3 MiB, and 227 MB of manifests piled up until the next cleanup. An error commits
    nothing, and Lance removes the files it had written. Only for the writer (under
    the writer lock).
    """
    import lance

    ds = _open(table_dir)
    # New fragments are numbered above every fragment the table ever had.
    first_new = max((f.fragment_id for f in ds.get_fragments()), default=-1) + 1
    lance.write_dataset(
        reader,
        ds,
        mode="append",
        max_rows_per_file=TARGET_ROWS,
        data_cache_bytes=STREAM_BUFFER_BYTES,
    )
    return first_new


def compact(table_dir: Path) -> None:
    """Merge small fragments into fragments of about :data:`TARGET_ROWS` rows.

    One compaction call writes each task's output as a single fragment, however many
    rows it merges, so calls are capped at ``TARGET_ROWS`` source rows and repeated
    until nothing is left to merge: fragments stay small enough for bounded index
    builds. Call it *before* indexing new rows: fragments no index covers yet are
    rewritten without remapping any index. Only for the writer (under the writer lock).
    """
    for _ in range(_MAX_COMPACTIONS):
        metrics = _open(table_dir).optimize.compact_files(
            target_rows_per_fragment=TARGET_ROWS,
            max_source_rows=TARGET_ROWS,
            materialize_deletions=False,
            num_threads=1,
        )
        if metrics.fragments_removed <= 1:
            break
    # A run of small fragments over the cap is left alone by capped calls: merge it.
    _open(table_dir).optimize.compact_files(
        target_rows_per_fragment=TARGET_ROWS, materialize_deletions=False, num_threads=1
    )


def index_fts(table_dir: Path, index_name: str, column: str, *, rebuild: bool = False) -> None:
    """Full-text index the fragments the index does not cover yet (every fragment when
    ``rebuild`` or when there is no index), in segments of about :data:`GROUP_ROWS`
    rows built one at a time, then publish them in one commit. Segments of a rebuild
    replace the ones covering the same fragments; readers see the old index until then.
    """
    ds = _open(table_dir)
    fts = next((ix for ix in ds.describe_indices() if ix.name == index_name), None)
    covered: set[int] = set()
    if fts is not None and not rebuild:
        for seg in fts.segments:
            covered.update(seg.fragment_ids)
    groups: list[list[int]] = []
    rows = GROUP_ROWS
    for frag in ds.get_fragments():
        if frag.fragment_id in covered:
            continue
        if rows >= GROUP_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(frag.fragment_id)
        rows += frag.count_rows()
    if not groups:
        return
    segments = [
        ds.create_index_uncommitted(
            column, "INVERTED", name=index_name, fragment_ids=group, replace=True, **FTS_PARAMS
        )
        for group in groups
    ]
    ds.commit_existing_index_segments(index_name, column, segments)


def update_indexes(
    table_dir: Path,
    *,
    fts_index: str,
    fts_column: str,
    scalar_indexes: list[str],
    retention_seconds: float,
    delete_unverified: bool,
) -> FtsShape:
    """Index new rows (new full-text segments via :func:`index_fts`, created if
    missing; the small scalar indexes are merged), then drop versions older than the
    retention.

    Only for the writer (under the writer lock). Returns the shape of the full-text
    index afterwards, so the caller can decide on a rebuild.
    """
    index_fts(table_dir, fts_index, fts_column)  # nothing to do on an empty table
    present = {ix.name for ix in _open(table_dir).describe_indices()}
    scalars = [name for name in scalar_indexes if name in present]
    if scalars:
        _open(table_dir).optimize.optimize_indices(index_names=scalars)
    return cleanup(table_dir, fts_index, retention_seconds, delete_unverified)


def cleanup(
    table_dir: Path, fts_index: str, retention_seconds: float, delete_unverified: bool
) -> FtsShape:
    """Drop versions older than the retention; return the full-text index's shape."""
    ds = _open(table_dir)
    fts = next((ix for ix in ds.describe_indices() if ix.name == fts_index), None)
    ds.cleanup_old_versions(
        older_than=timedelta(seconds=max(0.0, retention_seconds)),
        delete_unverified=delete_unverified,
        error_if_tagged_old_versions=False,
    )
    if fts is None:
        return FtsShape(0, 0, 0, 0)
    fragments = ds.get_fragments()
    live = {f.fragment_id for f in fragments}
    dead = [seg for seg in fts.segments if not live.intersection(seg.fragment_ids)]
    dead_bytes = sum(int(seg.size_bytes or 0) for seg in dead)
    fresh = -(-sum(f.count_rows() for f in fragments) // GROUP_ROWS)  # a rebuild's count
    return FtsShape(
        len(fts.segments), dead_bytes, int(fts.total_size_bytes or 0) - dead_bytes, fresh
    )


class FtsShape(NamedTuple):
    """Segments of the full-text index, the bytes of those that cover only rows that
    no longer exist (``dead_bytes``) and of the rest (``live_bytes``), and how many
    segments a rebuild would make (``fresh_segments``)."""

    segments: int
    dead_bytes: int
    live_bytes: int
    fresh_segments: int

    def needs_rebuild(self) -> bool:
        """Segments piled up, or a third of the index dead: rebuild from scratch."""
        too_many = self.segments > 2 * self.fresh_segments + MAX_FTS_SEGMENTS
        return too_many or 2 * self.dead_bytes > self.live_bytes
