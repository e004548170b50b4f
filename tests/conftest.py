"""Shared fixtures: a copy of the sample repository, settings with the fast fake
embedder, and one real-model index of the sample repository per test session."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from codeindex.config import load_settings
from codeindex.embedding import FAKE_MODEL

if TYPE_CHECKING:  # annotations only; the fixtures import these where they use them
    from codeindex.service import CodeIndex
    from codeindex.storage import Store

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample_repo"

# What the sample repo indexes: not .env (deny list), build/ and *.log (gitignore), or
# the binary (skipped).
INDEXABLE = frozenset(
    {
        ".gitignore",
        "README.md",
        "auth/java/PasswordHasher.java",
        "auth/tokens.py",
        "config/settings.yaml",
        "docs/architecture.md",
        "net/ratelimit.go",
        "net/retry.ts",
        "storage/lru.rs",
        "storage/query.c",
        "tools/backup.sh",
        "web/src/csv.js",
    }
)

# The one timestamp format of every JSON surface (types.utc_iso): UTC, to the second.
UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def copy_fixture(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest, symlinks=True, ignore=shutil.ignore_patterns(".codeindex"))
    return dest


def copy_model(dest: Path) -> Path:
    """A copy of the bundled model directory at ``dest`` (the weights linked, not
    copied), for tests that change its layout."""
    from codeindex.embedding import bundled_model_path

    src = bundled_model_path()
    dest.mkdir()
    for item in src.iterdir():
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        elif item.name == "model.safetensors":
            (dest / item.name).symlink_to(item)
        else:
            shutil.copy(item, dest / item.name)
    return dest


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    return copy_fixture(tmp_path / "repo")


def fake_settings(root: Path, **overrides):
    overrides.setdefault("model", FAKE_MODEL)
    overrides.setdefault("version_retention_seconds", 0)
    return load_settings(root, env={}, **overrides)


@pytest.fixture
def fake_index(sample_repo: Path):
    from codeindex.embedding import FakeEmbedder
    from codeindex.service import CodeIndex

    ci = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    ci.index()
    return ci


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """The sample repo indexed once with the real bundled model."""
    from codeindex.service import CodeIndex

    root = copy_fixture(tmp_path_factory.mktemp("real") / "repo")
    ci = CodeIndex(load_settings(root, env={}, version_retention_seconds=0))
    report = ci.index()
    assert not report.failed
    return ci


def open_store(ci: CodeIndex) -> Store:
    """The index of ``ci`` opened through the storage API, as another process reads it:
    a new :class:`~codeindex.storage.Store` on the same directory, not ``ci``'s own
    (tests inspect the index from outside). It checks for new table versions on every
    read, so it sees what ``ci`` commits later."""
    from codeindex.storage import Store

    return Store(ci.settings.index_dir, ci.embedder_dimension(), consistency_seconds=0.0)
