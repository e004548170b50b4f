"""reading.open_beneath: opening a path below a directory without following a symlink at
any level, so a checked path cannot be swapped for a link out of the directory; and
get_code, which reads through it, under a thread that keeps swapping."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.errors import CodeIndexError
from codeindex.reading import (
    NotRegularFileError,
    SymlinkInPathError,
    open_beneath,
    open_binary,
)
from codeindex.service import CodeIndex
from tests.conftest import fake_settings


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/pkg/a.py (regular) and outside/secret.py next to the root."""
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_bytes(b"inside = 1\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.py").write_bytes(b"SECRET = 1\n")
    return root


def read(root: Path, *parts: str) -> bytes:
    fd, _ = open_beneath(str(root), parts)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def test_a_regular_file_below_the_root_opens(tree: Path) -> None:
    assert read(tree, "pkg", "a.py") == b"inside = 1\n"
    fd, st = open_beneath(str(tree), ["pkg", "a.py"])
    os.close(fd)
    assert st.st_size == len(b"inside = 1\n")


def test_a_symlink_as_the_last_component_is_refused(tree: Path) -> None:
    # Even one pointing inside the root: the caller resolves links before it opens.
    (tree / "pkg" / "out.py").symlink_to(tree.parent / "outside" / "a.py")
    (tree / "pkg" / "in.py").symlink_to("a.py")
    for name in ("out.py", "in.py"):
        with pytest.raises(NotRegularFileError) as info:
            open_beneath(str(tree), ["pkg", name])
        assert info.value.kind == "symbolic link"


def test_a_symlink_as_a_directory_component_is_refused(tree: Path) -> None:
    (tree / "lnk").symlink_to(tree.parent / "outside")
    with pytest.raises(SymlinkInPathError) as info:
        open_beneath(str(tree), ["lnk", "a.py"])
    assert info.value.filename == str(tree / "lnk")
    # A file where a directory is expected is plain NotADirectoryError.
    with pytest.raises(NotADirectoryError):
        open_beneath(str(tree), ["pkg", "a.py", "x"])


def test_a_fifo_is_refused_without_blocking(tree: Path) -> None:
    # No writer ever opens it: a blocking open would hang this test.
    os.mkfifo(tree / "pkg" / "fifo.py")
    with pytest.raises(NotRegularFileError) as info:
        open_beneath(str(tree), ["pkg", "fifo.py"])
    assert info.value.kind == "fifo"


@pytest.mark.parametrize("parts", [[], [""], ["."], ["pkg", ".."], ["pkg/a.py"]])
def test_only_plain_components_are_accepted(tree: Path, parts: list[str]) -> None:
    with pytest.raises(ValueError, match="plain path components"):
        open_beneath(str(tree), parts)


# The get_code race: how many calls, and the most seconds they may take together.
RACE_CALLS = 3000
RACE_SECONDS = 10.0


def _swap_file(root: Path, stage: Path, outside: Path, stop: threading.Event) -> None:
    """Swap root/a.py between a regular file and a symlink to outside/a.py until ``stop``
    (os.replace: a.py is always one or the other, never missing)."""
    while not stop.is_set():
        (stage / "link").symlink_to(outside / "a.py")
        os.replace(stage / "link", root / "a.py")
        (stage / "file").write_bytes(b"inside = 1\n")
        os.replace(stage / "file", root / "a.py")


def _swap_dir(root: Path, stage: Path, outside: Path, stop: threading.Event) -> None:
    """Swap root/pkg between a real directory and a symlink to outside/ until ``stop``
    (a directory cannot be renamed over a symlink, so pkg is missing in between)."""
    (stage / "link").symlink_to(outside)
    while not stop.is_set():
        os.rename(root / "pkg", stage / "dir")
        os.rename(stage / "link", root / "pkg")
        os.rename(root / "pkg", stage / "link")
        os.rename(stage / "dir", root / "pkg")


@pytest.mark.parametrize(
    ("swapper", "target"), [(_swap_file, "a.py"), (_swap_dir, "pkg/a.py")], ids=["file", "dir"]
)
def test_get_code_never_follows_a_symlink_swapped_in_after_its_check(
    tree: Path, swapper: Callable[[Path, Path, Path, threading.Event], None], target: str
) -> None:
    # A local process swaps the file, or its parent directory, for a link out of the root
    # between get_code's path check and its open; the outside content must never come
    # back, and every refusal must be a CodeIndexError saying what to do.
    (tree / "a.py").write_bytes(b"inside = 1\n")
    stage = tree.parent / "stage"
    stage.mkdir()
    ci = CodeIndex(fake_settings(tree), embedder=FakeEmbedder())
    stop = threading.Event()
    thread = threading.Thread(
        target=swapper, args=(tree, stage, tree.parent / "outside", stop), daemon=True
    )
    thread.start()
    calls, read, refusals = 0, 0, set()
    deadline = time.monotonic() + RACE_SECONDS
    try:
        while calls < RACE_CALLS and time.monotonic() < deadline:
            calls += 1
            try:
                text = ci.get_code(target, 1, 1)["text"]
            except CodeIndexError as exc:
                refusals.add(str(exc).replace(target, "PATH"))
                continue
            assert text == "inside = 1", f"call {calls} read {text!r}"
            read += 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert read > 0, "the swapper never let a regular file be read"
    expected = ("changed while being read; try again", "outside the indexed root", "not a file")
    unexpected = {msg for msg in refusals if not any(e in msg for e in expected)}
    assert not unexpected, unexpected


def test_open_binary_reads_regular_files_and_refuses_the_rest_without_blocking(
    tmp_path: Path,
) -> None:
    # What the indexer reads files with: a file swapped for a FIFO or a device after
    # discovery judged it is refused at once, not read or waited on.
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    with open_binary(str(tmp_path / "a.py")) as fh:
        assert fh.read() == b"x = 1\n"
    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    for name, kind in (("fifo.py", "fifo"), ("zero.py", "character device")):
        with pytest.raises(NotRegularFileError) as info:
            open_binary(str(tmp_path / name))
        assert kind in info.value.kind
