"""Compaction and index upkeep of the chunks table, in memory bounded by the change.

LanceDB's ``Table.optimize()`` compacts with fixed options and merges every index
into one: it rewrites any fragment under a million rows together with new ones, and
merging or remapping the full-text index loads all of it. Measured on a 366,000-chunk
table: 73 s and a 1.7 GB peak to fold in 20,000 new rows, and a 2 GB peak to merge two
full-text segments — on every incremental update. So the chunks table is maintained
here, through the Lance format library (``pylance``, the same Lance release LanceDB
embeds), with explicit options:

* compaction merges only small fragments, into fragments of at most
  :data:`TARGET_ROWS`, and never materialises deletions in big fragments (doing so
  would remap the full-text index over all their rows);
* index upkeep adds a *delta* segment for new rows (cost ∝ new rows) instead of
  merging; the scalar (BTree) indexes, which are small, are merged;
* once the full-text index has more than :data:`MAX_FTS_SEGMENTS` segments,  or a third of
  it covers only rows that are gone (the first run rewrites every row when it adds
  its vector), the caller rebuilds it from scratch under LanceDB's build memory limit —
  bounded memory, time ∝ table size, rarely.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

TARGET_ROWS = 65_536  # rows per compacted fragment: bounds what one compaction rewrites
MAX_FTS_SEGMENTS = 32
_CACHE_BYTES = 32 * 1024 * 1024


def _open(table_dir: Path) -> Any:
    import lance  # pylance: imported only here (≈20 MB, and only by writers)

    return lance.dataset(
        str(table_dir), index_cache_size_bytes=_CACHE_BYTES, metadata_cache_size_bytes=_CACHE_BYTES
    )


def compact(table_dir: Path) -> None:
    """Merge small fragments into fragments of at most :data:`TARGET_ROWS` rows.

    Call it *before* indexing new rows: fragments no index covers yet are rewritten
    without remapping any index. Only for the writer (under the writer lock).
    """
    _open(table_dir).optimize.compact_files(
        target_rows_per_fragment=TARGET_ROWS,
        materialize_deletions=False,
        num_threads=1,
    )


def update_indexes(
    table_dir: Path,
    *,
    fts_index: str,
    scalar_indexes: list[str],
    retention_seconds: float,
    delete_unverified: bool,
) -> FtsShape:
    """Index new rows (a delta segment for the full-text index; the small scalar
    indexes are merged), then drop versions older than the retention.

    Only for the writer (under the writer lock). Returns the shape of the full-text
    index afterwards, so the caller can decide on a rebuild.
    """
    ds = _open(table_dir)
    present = {ix.name for ix in ds.describe_indices()}
    if fts_index in present:
        ds.optimize.optimize_indices(index_names=[fts_index], num_indices_to_merge=0)
    scalars = [name for name in scalar_indexes if name in present]
    if scalars:
        _open(table_dir).optimize.optimize_indices(index_names=scalars)
    ds = _open(table_dir)
    fts = next((ix for ix in ds.describe_indices() if ix.name == fts_index), None)
    ds.cleanup_old_versions(
        older_than=timedelta(seconds=max(0.0, retention_seconds)),
        delete_unverified=delete_unverified,
        error_if_tagged_old_versions=False,
    )
    if fts is None:
        return FtsShape(0, 0, 0)
    live = {f.fragment_id for f in ds.get_fragments()}
    dead = [seg for seg in fts.segments if not live.intersection(seg.fragment_ids)]
    dead_bytes = sum(int(seg.size_bytes or 0) for seg in dead)
    return FtsShape(len(fts.segments), dead_bytes, int(fts.total_size_bytes or 0) - dead_bytes)


class FtsShape(NamedTuple):
    """Segments of the full-text index, and the bytes of those that cover only rows
    that no longer exist (``dead_bytes``) and of the rest (``live_bytes``)."""

    segments: int
    dead_bytes: int
    live_bytes: int

    def needs_rebuild(self) -> bool:
        """Too many segments, or a third of the index dead: rebuild from scratch."""
        return self.segments > MAX_FTS_SEGMENTS or 2 * self.dead_bytes > self.live_bytes
