"""A long-lived reader whose table version had its files cleaned up by a writer reads the
latest version instead of failing with Lance's "Not found" (watch and MCP servers read
while their own watcher compacts, with a short ``version_retention_seconds``)."""

from __future__ import annotations

from pathlib import Path

from codeindex.storage import Store


def test_a_reader_on_a_cleaned_up_version_reads_the_latest(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    writer = Store(index_dir, 8, create=True, consistency_seconds=0.0)
    writer.write_meta({"k": "v0"})
    # A reader that does not look for new versions for an hour, like a busy server; it
    # has opened the meta table at v0 but not read its rows yet.
    reader = Store(index_dir, 8, consistency_seconds=3600.0)
    opened_at = reader.meta_version()
    for n in range(1, 4):
        writer.write_meta({"k": f"v{n}"})
        writer.optimize(retention_seconds=0, delete_unverified=True)  # v0's files go
    assert reader.meta_version() == opened_at  # still on the removed version
    assert reader.read_meta()["k"] == "v3"
    assert reader.text_search("anything", 5) == []  # empty chunks table: no error
