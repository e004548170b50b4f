"""reading.open_beneath: opening a path below a directory without following a symlink at
any level, so a checked path cannot be swapped for a link out of the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeindex.reading import NotRegularFileError, SymlinkInPathError, open_beneath


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
