"""Page cursors are signed with a key of the index's own: a cursor of another index,
an edited or forged one, or one signed with the key of earlier releases is refused
with a message saying what to do, and so is a signed cursor whose numbers are out of
range. Real indexes on disk, with the fast fake embedder."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import threading
from pathlib import Path

import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.errors import BadCursorError, CodeIndexError
from codeindex.service import CodeIndex
from codeindex.storage.cursor import KEY_BYTES, KEY_FILE, encode_cursor, fingerprint, load_key
from tests.conftest import copy_fixture, fake_settings, open_store


def _index(root: Path) -> CodeIndex:
    ci = CodeIndex(fake_settings(root), embedder=FakeEmbedder())
    ci.index()
    return ci


def test_key_file_is_created_once_private_and_stable_across_reopen(
    fake_index: CodeIndex,
) -> None:
    key_path = fake_index.settings.index_dir / KEY_FILE
    first = fake_index.search("function", 2)  # issuing a cursor is the first need
    assert first.next_cursor
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key, inode = key_path.read_bytes(), key_path.stat().st_ino
    assert len(key) == KEY_BYTES

    # Another reader of the same index (as another process opens it) takes the cursor.
    reopened = CodeIndex(fake_index.settings, embedder=FakeEmbedder())
    assert reopened.search("function", 2, cursor=first.next_cursor).results
    assert open_store(fake_index).cursor_key == key
    assert key_path.read_bytes() == key and key_path.stat().st_ino == inode
    assert [p.name for p in key_path.parent.glob(".cursor-key-*")] == []  # no temp left


def test_racing_creators_all_end_with_the_same_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        keys.append(load_key(tmp_path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and set(keys) == {(tmp_path / KEY_FILE).read_bytes()}


def test_a_cursor_of_another_index_is_refused(fake_index: CodeIndex, tmp_path: Path) -> None:
    other = _index(copy_fixture(tmp_path / "other"))
    for page in (fake_index.search("function", 2), fake_index.list_files(page_size=2)):
        assert page.next_cursor
        with pytest.raises(BadCursorError, match="malformed cursor .*drop the cursor"):
            if hasattr(page, "query"):
                other.search("function", 2, cursor=page.next_cursor)
            else:
                other.list_files(page_size=2, cursor=page.next_cursor)


def test_edited_and_old_style_cursors_are_refused(fake_index: CodeIndex) -> None:
    cursor = fake_index.search("function", 2).next_cursor
    assert cursor
    token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    edited = token.replace(b'"o":2', b'"o":4')
    assert edited != token
    # Signed as releases before per-index keys did: with the key in the source code.
    payload = token.rpartition(b".")[0]
    old_sum = hashlib.blake2b(payload, digest_size=6, key=b"codeindex-cursor").hexdigest()
    for forged in (edited, payload + b"." + old_sum.encode()):
        text = base64.urlsafe_b64encode(forged).decode().rstrip("=")
        with pytest.raises(BadCursorError, match="malformed cursor .*drop the cursor"):
            fake_index.search("function", 2, cursor=text)
    with pytest.raises(BadCursorError, match="malformed cursor; drop the cursor"):
        fake_index.search("function", 2, cursor=cursor + "A" * 512)


def test_signed_cursors_with_out_of_range_numbers_are_refused(fake_index: CodeIndex) -> None:
    """Defence in depth: even with the key (a leaked key file), a cursor cannot make the
    service read past its limits or hand storage a number it cannot hold."""
    key = open_store(fake_index).cursor_key
    search_fp = fingerprint("search", "function", 2, "", "")
    files_fp = fingerprint("files", "", "", False)
    cases = [
        (lambda c: fake_index.search("function", 2, cursor=c), search_fp, 10**30, 0, "offset"),
        (lambda c: fake_index.search("function", 2, cursor=c), search_fp, 1001, 0, "offset"),
        (lambda c: fake_index.search("function", 2, cursor=c), search_fp, -1, 0, "offset"),
        (lambda c: fake_index.list_files(page_size=2, cursor=c), files_fp, 10**30, 1, "offset"),
        (lambda c: fake_index.list_files(page_size=2, cursor=c), files_fp, 2, -1, "version"),
        (lambda c: fake_index.list_files(page_size=2, cursor=c), files_fp, 2, 2**64, "version"),
    ]
    for call, fp, offset, version, field in cases:
        kind = "search" if fp == search_fp else "files"
        with pytest.raises(BadCursorError, match=f"this cursor's {field}.*drop the cursor"):
            call(encode_cursor(kind, fp, offset, version, key))
    # A number that is not an integer at all is malformed.
    payload = json.dumps({"k": "search", "f": search_fp, "o": 2.5, "v": 0}).encode()
    sig = hashlib.blake2b(payload, digest_size=16, key=key).hexdigest().encode()
    text = base64.urlsafe_b64encode(payload + b"." + sig).decode()
    with pytest.raises(BadCursorError, match="malformed cursor"):
        fake_index.search("function", 2, cursor=text)


def test_a_damaged_key_file_is_a_clear_error(fake_index: CodeIndex) -> None:
    (fake_index.settings.index_dir / KEY_FILE).write_bytes(b"short")
    with pytest.raises(CodeIndexError, match="is not a cursor key .*delete it"):
        fake_index.search("function", 2)  # issuing a cursor reads the key


def test_where_the_key_cannot_be_stored_the_process_signs_with_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index directory removed under a running server (or read-only, or on a
    filesystem without hard links): paging still works within the process, with a
    warning, and the error is not passed on to the request."""
    gone = tmp_path / "removed-index"
    key = load_key(gone)
    assert len(key) == KEY_BYTES and not gone.exists()
    assert "cursors work within this process only" in caplog.text
