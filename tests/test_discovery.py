"""Discovery against real files in tmp_path: ignore rules, deny list, symlinks, skips."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codeindex import discovery
from codeindex.config import Settings, load_settings
from codeindex.discovery import (
    DENY_PATTERNS,
    IgnoreMatcher,
    check_path,
    resolve_inside_root,
    walk,
)
from codeindex.discovery import ignore as ignore_module
from codeindex.errors import CodeIndexError, PathOutsideRootError
from codeindex.types import Skipped, SkipReason, SourceFile
from tests.conftest import fake_settings


def write(root: Path, rel: str, content: str | bytes = "x = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def settings_for(root: Path, **overrides: object) -> Settings:
    return load_settings(root, env={}, **overrides)


def run(settings: Settings) -> dict[str, SourceFile | Skipped]:
    out: dict[str, SourceFile | Skipped] = {}
    for item in walk(settings):
        assert item.path not in out, f"{item.path} yielded twice"
        out[item.path] = item
    return out


def indexed(items: dict[str, SourceFile | Skipped]) -> set[str]:
    return {p for p, v in items.items() if isinstance(v, SourceFile)}


def skipped(items: dict[str, SourceFile | Skipped]) -> dict[str, str]:
    return {p: v.reason for p, v in items.items() if isinstance(v, Skipped)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


# --------------------------------------------------------------------------- basics


def test_metadata_language_and_deterministic_order(repo: Path) -> None:
    write(repo, "b.py", "print(1)\n")
    write(repo, "a.md", "# hi\n")
    write(repo, "Makefile", "all:\n")
    write(repo, "pkg/z.go", "package z\n")
    write(repo, "pkg/a.rs", "fn a() {}\n")
    write(repo, "aaa/inner.txt", "t\n")
    settings = settings_for(repo)
    first = list(walk(settings))
    assert first == list(walk(settings))
    # Files of a directory in name order, then its subdirectories in name order.
    assert [i.path for i in first] == [
        "Makefile",
        "a.md",
        "b.py",
        "aaa/inner.txt",
        "pkg/a.rs",
        "pkg/z.go",
    ]
    by_path = {i.path: i for i in first}
    b = by_path["b.py"]
    assert isinstance(b, SourceFile)
    st = (repo / "b.py").stat()
    assert (b.size, b.mtime_ns, b.language) == (st.st_size, st.st_mtime_ns, "python")
    assert b.abs_path == repo / "b.py"
    assert by_path["Makefile"].language == "make"  # type: ignore[union-attr]
    assert by_path["pkg/z.go"].language == "go"  # type: ignore[union-attr]


def test_root_that_cannot_be_listed_raises_clearly(repo: Path) -> None:
    settings = settings_for(repo)
    repo.rmdir()
    with pytest.raises(CodeIndexError, match="cannot list the root"):
        list(walk(settings))


# --------------------------------------------------------------------------- ignore files


def test_nested_gitignore_precedence_negation_anchoring_dir_only(repo: Path) -> None:
    write(
        repo,
        ".gitignore",
        "*.log\n!keep.log\n/build\nlogs/\n**/cache/**/*.tmp\nvendor/\n!vendor/keep.py\n",
    )
    write(repo, "keep.log", "k\n")
    write(repo, "drop.log", "d\n")
    write(repo, "build/out.py")  # anchored: ignored at the root only
    write(repo, "src/build/gen.py")  # ...but not deeper
    write(repo, "src/logs/a.txt")  # dir-only pattern matches a directory
    write(repo, "other/logs", "a file named logs\n")  # ...but not a file
    write(repo, "x/cache/y/z/f.tmp", "t\n")  # **
    write(repo, "x/cache/y/z/f.py")
    write(repo, "vendor/keep.py")  # parent excluded: cannot be re-included
    # A deeper .gitignore overrides the shallower one, relative to its own directory.
    write(repo, "sub/.gitignore", "!debug.log\nkeep.log\n/only_here.py\n")
    write(repo, "sub/debug.log", "d\n")
    write(repo, "sub/keep.log", "k\n")
    write(repo, "sub/only_here.py")
    write(repo, "sub/deeper/only_here.py")
    write(repo, "sub/deeper/other.log", "o\n")

    got = indexed(run(settings_for(repo)))
    assert got == {
        ".gitignore",
        "keep.log",
        "src/build/gen.py",
        "other/logs",
        "x/cache/y/z/f.py",
        "sub/.gitignore",
        "sub/debug.log",
        "sub/deeper/only_here.py",
    }


def test_ignored_directories_are_pruned_not_listed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo, ".gitignore", "node_modules/\n")
    for i in range(50):
        write(repo, f"node_modules/pkg{i}/index.js", "x\n")
    write(repo, ".git/HEAD", "ref: refs/heads/main\n")
    write(repo, ".git/objects/ab/cd", b"\0blob")
    write(repo, ".aws/credentials", "[default]\n")
    write(repo, "src/app.py")
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path):  # type: ignore[no-untyped-def]
        listed.append(os.path.relpath(path, repo))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    got = run(settings_for(repo))
    assert indexed(got) == {".gitignore", "src/app.py"}
    assert set(listed) == {".", "src"}


def test_git_info_exclude_is_weaker_than_gitignore(repo: Path) -> None:
    write(repo, ".git/info/exclude", "# local excludes\nscratch.py\nnotes.md\n")
    write(repo, ".gitignore", "!notes.md\n")
    write(repo, "scratch.py")
    write(repo, "deep/scratch.py")
    write(repo, "notes.md", "n\n")
    write(repo, "main.py")
    assert indexed(run(settings_for(repo))) == {".gitignore", "notes.md", "main.py"}


def test_codeindexignore_at_any_depth_overrides_gitignore_in_same_dir(repo: Path) -> None:
    write(repo, ".codeindexignore", "fixtures/\n")
    write(repo, "fixtures/big.json", "{}\n")
    write(repo, "sub/.gitignore", "*.gen.py\n")
    write(repo, "sub/.codeindexignore", "!keep.gen.py\nhuge_table.py\n")
    write(repo, "sub/a.gen.py")
    write(repo, "sub/keep.gen.py")
    write(repo, "sub/huge_table.py")
    write(repo, "sub/ok.py")
    assert indexed(run(settings_for(repo))) == {
        ".codeindexignore",
        "sub/.gitignore",
        "sub/.codeindexignore",
        "sub/keep.gen.py",
        "sub/ok.py",
    }


def test_invalid_ignore_lines_are_skipped_with_a_warning_and_the_rest_applies(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Git accepts a lone backslash, a lone "!" and a trailing backslash silently (they
    # match nothing); pathspec raises on them, which used to stop the whole walk.
    write(repo, ".gitignore", "\\\n!\n*.log\n")
    write(repo, "sub/.codeindexignore", "# c\nfoo\\\n\n*.tmp\n!\n")
    write(repo, "a.log", "l\n")
    write(repo, "sub/b.log", "l\n")
    write(repo, "sub/c.tmp", "t\n")
    write(repo, "sub/d.py")
    with caplog.at_level(logging.WARNING, logger="codeindex.discovery"):
        got = run(settings_for(repo))
    assert set(got) == {".gitignore", "sub/.codeindexignore", "sub/d.py"}
    assert sorted(r.getMessage() for r in caplog.records) == [
        ".gitignore: skipped 2 invalid pattern line(s), which git ignores too: "
        "line 1 '\\\\', line 2 '!'",
        "sub/.codeindexignore: skipped 2 invalid pattern line(s), which git ignores too: "
        "line 2 'foo\\\\', line 5 '!'",
    ]
    matcher = IgnoreMatcher(settings_for(repo))
    assert matcher.is_ignored("sub/x.log") and not matcher.is_ignored("sub/x.py")


def test_many_invalid_ignore_lines_make_one_bounded_warning(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(repo, ".gitignore", "!\n" * 10_000 + "*.log\n")
    write(repo, "a.log", "l\n")
    with caplog.at_level(logging.WARNING, logger="codeindex.discovery"):
        assert indexed(run(settings_for(repo))) == {".gitignore"}
    [record] = caplog.records
    assert "skipped 10000 invalid" in record.getMessage()
    assert record.getMessage().endswith("line 5 '!' and 9995 more")


def test_index_dir_inside_root_is_never_walked(repo: Path) -> None:
    write(repo, ".codeindex/chunks.lance/data.txt", "d\n")
    write(repo, "data/idx/meta.json", "{}\n")
    write(repo, "data/real.csv", "a,b\n")
    assert indexed(run(settings_for(repo))) == {"data/idx/meta.json", "data/real.csv"}
    custom = settings_for(repo, index_dir=repo / "data" / "idx")
    assert indexed(run(custom)) == {".codeindex/chunks.lance/data.txt", "data/real.csv"}
    assert not IgnoreMatcher(custom).is_ignored(".codeindex/x", False)  # custom dir moved
    assert IgnoreMatcher(custom).is_ignored("data/idx/meta.json")


# --------------------------------------------------------------------------- deny list


def test_deny_list_applies_at_any_depth_and_beats_negation(repo: Path) -> None:
    write(repo, ".gitignore", "!.env\n!*.pem\n!.aws/\n")
    write(repo, ".codeindexignore", "!id_rsa\n")
    secrets = [
        ".env",
        "a/b/.env.local",
        "deep/x/id_rsa",
        "deep/x/id_ed25519.pub",
        ".aws/credentials",
        "home/.ssh/config",
        "tls/server.pem",
        "tls/server.key",
        "app/secrets.yaml",
        "ci/.npmrc",
        "ci/credentials.json",
        "k/.docker/config.json",
        "vault.kdbx",
    ]
    for rel in secrets:
        write(repo, rel, "SECRET=1\n")
    write(repo, "app/settings.py")
    # A symlink must not smuggle a deny-listed file in under an innocent name.
    os.symlink(".env", repo / "notes.txt")
    os.symlink(".aws", repo / "cloud")
    got = run(settings_for(repo))
    assert set(got) == {".gitignore", ".codeindexignore", "app/settings.py"}
    assert ".env" in DENY_PATTERNS and ".aws/" in DENY_PATTERNS
    matcher = IgnoreMatcher(settings_for(repo))
    assert all(matcher.is_ignored(rel) for rel in secrets)


# Shapes of secret files, as found in real repositories and home directories. Each is
# written at the root as spelled here and three levels down with its case swapped.
SECRET_SHAPES = (
    # environment files
    ".env",
    ".env.production",
    "prod.env",
    ".envrc",
    ".ENV",
    # private keys, certificates, key stores
    "server.pem",
    "SERVER.PEM",
    "tls.key",
    "Private.Key",
    "AuthKey_ABC123XYZ.p8",
    "cert.p12",
    "cert.PFX",
    "release.jks",
    "upload.keystore",
    "office.ovpn",
    "http.keytab",
    "id_rsa",
    "id_ed25519",
    "id_ecdsa_sk.pub",
    "ssh_host_ed25519_key",
    "private.asc",
    "my-secret-key.asc",
    "secring.gpg",
    # cloud and cluster credentials
    "credentials",
    "kubeconfig",
    "prod.KubeConfig",
    "Kubeconfig-admin.yaml",
    ".kube/config",
    "service-account.json",
    "Service_Account-prod.json",
    "client_secret_1234.apps.googleusercontent.com.json",
    "application_default_credentials.json",
    ".gcloud/credentials.json",
    ".config/gcloud/legacy_credentials/me/adc.json",
    ".aws/config",
    # infrastructure state
    "prod.tfvars",
    "terraform.tfstate",
    "terraform.tfstate.backup",
    ".terraformrc",
    ".vault-token",
    # tool credentials
    ".s3cfg",
    ".my.cnf",
    ".pgpass",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".docker/config.json",
    ".git-credentials",
    "htpasswd",
    ".htpasswd",
    # application configs, system files, histories
    "database.yml",
    "wp-config.php",
    "secrets.yaml",
    "shadow",
    "gshadow",
    ".bash_history",
)

# Ordinary files whose names look a little like secrets: all stay indexed. Also written
# at the root and three levels down with the case swapped.
ORDINARY_SHAPES = (
    "keys.py",
    "environment.ts",
    "env.py",
    "tokenizer.json",
    "secrets_test_util.go",
    "keystore.go",
    "shadow_dom.ts",
    "public_key.asc",
    "pkg/credentials/tls.go",  # a code package named like a secret file (grpc-go)
    "pkg/kubeconfig/kubeconfig.go",  # ... (kubeadm)
    ".env.example",
    ".env.sample",
    ".env.template",
    "example.env",
    "database.yml.example",
    "terraform.tfvars.example",
)


def _both_cases(shapes: tuple[str, ...]) -> list[str]:
    return [*shapes, *(f"a/b/c/{shape.swapcase()}" for shape in shapes)]


def _write_corpus(repo: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Write both corpora; return {path: marker} for the secrets and the ordinary files.
    Each file holds a unique word, to search for."""
    secrets = {rel: f"secretmarker{i}" for i, rel in enumerate(_both_cases(SECRET_SHAPES))}
    ordinary = {rel: f"ordinarymarker{i}" for i, rel in enumerate(_both_cases(ORDINARY_SHAPES))}
    for rel, marker in {**secrets, **ordinary}.items():
        write(repo, rel, f"value = {marker!r}\nother = 1\n")
    return secrets, ordinary


def test_secret_file_shapes_in_any_case_and_depth_are_denied(repo: Path) -> None:
    secrets, ordinary = _write_corpus(repo)
    assert indexed(run(settings_for(repo))) == set(ordinary)
    matcher = IgnoreMatcher(settings_for(repo))
    for rel in secrets:
        assert matcher.is_ignored(rel), rel
        with pytest.raises(PathOutsideRootError, match="deny-listed"):
            resolve_inside_root(settings_for(repo), rel)
    assert not any(matcher.is_ignored(rel) for rel in ordinary)


def test_secret_files_are_never_listed_nor_searchable(repo: Path) -> None:
    from codeindex.embedding import FakeEmbedder
    from codeindex.service import CodeIndex

    secrets, ordinary = _write_corpus(repo)
    ci = CodeIndex(fake_settings(repo), embedder=FakeEmbedder())
    report = ci.index()
    assert not report.failed and report.skipped == {}
    listed = {f.path for f in ci.list_files(page_size=500).files}
    assert listed == set(ordinary)
    assert ci.list_files(page_size=500, skipped=True).files == ()
    for rel, marker in ordinary.items():  # the search does find a marker when indexed
        hits = ci.search(marker, k=3, semantic=False).results
        assert hits and hits[0].path == rel, (rel, hits)
    for marker in secrets.values():
        for semantic in (False, True):
            for hit in ci.search(marker, k=20, semantic=semantic).results:
                assert hit.path not in secrets and marker not in hit.snippet


def test_hard_links_to_deny_listed_files_are_left_out(repo: Path) -> None:
    write(repo, ".env", "API_KEY=hunter2\n")
    write(repo, "config/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    os.link(repo / ".env", repo / "notes.txt")  # same directory, listed after .env
    (repo / "zz").mkdir()
    os.link(repo / "config" / "id_rsa", repo / "zz" / "key.py")  # a later directory
    os.symlink("notes.txt", repo / "alias.txt")  # a symlink to the twin
    write(repo, "app.py")
    write(repo, "copy.py")
    os.link(repo / "copy.py", repo / "copy2.py")  # hard links between ordinary files stay
    got = run(settings_for(repo))
    assert indexed(got) == {"app.py", "copy.py", "copy2.py"}
    assert skipped(got) == {}


def test_deny_list_entries_are_lower_case_and_names_have_no_slash() -> None:
    for pattern in DENY_PATTERNS:
        assert pattern == pattern.casefold(), pattern  # matched against case-folded paths
        # A name entry is matched against one path component; a "/" could never match.
        assert pattern.endswith("/") or "/" not in pattern, pattern


# --------------------------------------------------------------------------- symlinks


def test_symlink_loops_are_cut(repo: Path) -> None:
    write(repo, "sub/a.py")
    os.symlink("..", repo / "sub" / "up")  # back to the root
    os.symlink("self", repo / "self")  # ELOOP on stat
    got = run(settings_for(repo))
    assert indexed(got) == {"sub/a.py"}
    assert skipped(got) == {"sub/up": SkipReason.SYMLINK_LOOP, "self": SkipReason.SYMLINK_LOOP}


def test_symlinked_dir_inside_root_duplicate_uses_real_path(repo: Path) -> None:
    write(repo, "real/x.py")
    os.symlink("real", repo / "alias")  # sorts before "real", still indexed as real/
    write(repo, ".gitignore", "build/\n")
    write(repo, "build/gen.py")
    os.symlink("build", repo / "generated")  # target ignored: followed under its link path
    write(repo, "target.py", "t = 1\n")
    os.symlink("target.py", repo / "link.py")
    got = run(settings_for(repo))
    assert indexed(got) == {".gitignore", "real/x.py", "generated/gen.py", "target.py", "link.py"}
    assert skipped(got) == {}  # duplicates are left out silently
    link = got["link.py"]
    assert isinstance(link, SourceFile)
    assert link.size == (repo / "target.py").stat().st_size
    assert link.abs_path == repo / "link.py"
    nolinks = run(settings_for(repo, follow_symlinks=False))
    assert indexed(nolinks) == {".gitignore", "real/x.py", "target.py"}


def test_symlinks_outside_root_and_dangling(tmp_path: Path, repo: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.py", "password = 1\n")
    os.symlink(outside / "secret.py", repo / "ext_file.py")
    os.symlink(outside, repo / "ext_dir")
    os.symlink("missing.py", repo / "dangling.py")
    write(repo, "ok.py")
    got = run(settings_for(repo))
    assert indexed(got) == {"ok.py"}
    assert skipped(got) == {
        "ext_file.py": SkipReason.SYMLINK_OUTSIDE_ROOT,
        "ext_dir": SkipReason.SYMLINK_OUTSIDE_ROOT,
        "dangling.py": SkipReason.VANISHED,
    }
    assert "dangling" in got["dangling.py"].detail  # type: ignore[union-attr]


def test_walk_under_a_directory_is_the_full_walk_restricted_to_it(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\nbuild/\n!build/kept.py\n")  # too late: build/ is pruned
    write(repo, "pkg/.gitignore", "!keep.log\nlocal/\n")
    for rel in ("pkg/a.py", "pkg/keep.log", "pkg/drop.log", "pkg/sub/b.py", "pkg/sub/deep/c.go"):
        write(repo, rel)
    write(repo, "pkg/local/ignored.py")  # ignored by the nested .gitignore
    write(repo, "pkg/.env", "TOKEN=1\n")  # deny-listed
    write(repo, "pkg/blob.bin", b"\0\1\2")  # Skipped(binary)
    write(repo, "pkg/package-lock.json", "{}\n")  # Skipped(generated)
    write(repo, "other/o.py")
    write(repo, "build/kept.py")
    os.symlink("a.py", repo / "pkg" / "alias.py")  # a symlinked file: yielded as a file
    os.symlink("../other", repo / "pkg" / "linked")  # a symlinked directory: not entered
    os.symlink("pkg", repo / "pkglink")
    settings = settings_for(repo)
    full = [(i.path, type(i), getattr(i, "reason", None)) for i in walk(settings)]
    under = [(i.path, type(i), getattr(i, "reason", None)) for i in walk(settings, "pkg")]
    assert under == [f for f in full if f[0].startswith("pkg/")]  # same items, same order
    assert {p for p, kind, _ in under if kind is SourceFile} == {
        "pkg/.gitignore",
        "pkg/a.py",
        "pkg/alias.py",
        "pkg/keep.log",
        "pkg/sub/b.py",
        "pkg/sub/deep/c.go",
    }
    assert {p for p, kind, _ in under if kind is Skipped} == {
        "pkg/blob.bin",
        "pkg/package-lock.json",
    }
    assert [i.path for i in walk(settings, "pkg/sub/")] == ["pkg/sub/b.py", "pkg/sub/deep/c.go"]
    # Nothing for what the full walk does not list as a directory of its own.
    for nothing in ("build", "pkg/local", "pkg/a.py", "missing", ".git", "pkglink", "pkglink/sub"):
        assert list(walk(settings, nothing)) == [], nothing
    assert [i.path for i in walk(settings, ".")] == [p for p, _, _ in full]  # the root
    with pytest.raises(PathOutsideRootError):
        list(walk(settings, "../repo"))


# --------------------------------------------------------------------------- per-file skips


def test_binary_fifo_and_too_large(repo: Path) -> None:
    write(repo, "img.png", b"\x89PNG\r\n\x1a\n\0\0\0")
    write(repo, "late_nul.txt", b"abc\n" * 2250 + b"\0")  # NUL after the 8 KiB sniff
    os.mkfifo(repo / "pipe")
    write(repo, "big.py", "x" * 2000)
    write(repo, "small.py", "x" * 100)
    settings = settings_for(repo).replace(max_file_mb=0.001)  # 1048 bytes
    result: list[dict[str, SourceFile | Skipped]] = []
    # If discovery ever opened the FIFO it would block forever; fail instead of hanging.
    t = threading.Thread(target=lambda: result.append(run(settings)), daemon=True)
    t.start()
    t.join(10)
    assert result, "walk() blocked (did it open the FIFO?)"
    got = result[0]
    assert skipped(got) == {
        "img.png": SkipReason.BINARY,
        "pipe": SkipReason.SPECIAL_FILE,
        "big.py": SkipReason.TOO_LARGE,
        "late_nul.txt": SkipReason.TOO_LARGE,
    }
    detail = got["big.py"].detail  # type: ignore[union-attr]
    assert "2000" in detail and "max_file_mb" in detail
    assert indexed(got) == {"small.py"}
    assert isinstance(run(settings_for(repo))["late_nul.txt"], SourceFile)


def test_file_vanishing_between_listing_and_stat(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo, "gone.py")
    write(repo, "stays.py")
    real_scandir = os.scandir

    class ListThenDelete:
        """Lists the directory for real, then deletes gone.py (a concurrent rm)."""

        def __init__(self, path: str) -> None:
            with real_scandir(path) as it:
                self.entries = list(it)
            if os.path.realpath(path) == os.path.realpath(repo):
                (repo / "gone.py").unlink(missing_ok=True)

        def __enter__(self):  # type: ignore[no-untyped-def]
            return iter(self.entries)

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(os, "scandir", ListThenDelete)
    got = run(settings_for(repo))
    assert indexed(got) == {"stays.py"}
    assert skipped(got) == {"gone.py": SkipReason.VANISHED}


def test_unreadable_file_and_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which reads a chmod 000 file anyway; so inject the
    # PermissionError the kernel would give a normal user at the exact calls discovery
    # makes (os.open for the sniff, os.scandir for a directory). The test always runs.
    write(repo, "locked.py")
    write(repo, "private/inner.py")
    write(repo, "public/ok.py")
    write(repo, "vanishing.py")
    real_open, real_scandir = os.open, os.scandir

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(path))
        if str(path).endswith("vanishing.py"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    got = run(settings_for(repo))
    assert indexed(got) == {"public/ok.py"}
    assert skipped(got) == {
        "locked.py": SkipReason.UNREADABLE,
        "private": SkipReason.UNREADABLE,
        "vanishing.py": SkipReason.VANISHED,
    }


# --------------------------------------------------------------------------- files discovery reads

# Discovery reads ignore files and a ``.git`` file itself. A repository can commit any of
# these in their place: reading /dev/zero or /dev/urandom never ends, opening a FIFO
# blocks forever.
ODD_KINDS = ("dev_zero", "dev_urandom", "fifo")


def make_odd(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/" + kind.removeprefix("dev_"), path)


# Walks in a child process capped at 1 GiB of address space and a timeout, so that a
# discovery that reads /dev/zero or opens a FIFO fails this test instead of eating the
# machine's memory or hanging the suite. Prints the walk and the warnings as JSON.
_BOUNDED_WALK = r"""
import json, logging, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from codeindex.config import load_settings
from codeindex.discovery import walk
from codeindex.types import Skipped

warnings = []

class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger("codeindex").addHandler(Keep(logging.WARNING))
items = [
    [i.path, i.reason if isinstance(i, Skipped) else "", getattr(i, "detail", "")]
    for i in walk(load_settings(sys.argv[1], env={}))
]
print(json.dumps({"items": items, "warnings": warnings}))
"""


def bounded_walk(root: Path) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """walk(root) in a child process: ({path: (skip reason or "", detail)}, warnings)."""
    try:
        res = subprocess.run(
            [sys.executable, "-c", _BOUNDED_WALK, str(root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("walk() did not finish: did discovery open a FIFO or read a device?")
    assert res.returncode == 0, f"walk() failed (out of memory?): {res.stderr[-2000:]}"
    out = json.loads(res.stdout)
    return {p: (r, d) for p, r, d in out["items"]}, out["warnings"]


def _odd_tree(repo: Path, kind: str) -> set[str]:
    """Odd .gitignore/.codeindexignore/.git at the root and in sub/, ordinary files, and
    one valid ignore file that must still apply. Returns the paths that must be indexed."""
    for d in ("", "sub/"):
        for name in (".gitignore", ".codeindexignore", ".git"):
            make_odd(repo / f"{d}{name}", kind)
    write(repo, "main.py", "def main_entry():\n    return 1\n")
    write(repo, "sub/lib.py", "def lib_helper():\n    return 2\n")
    write(repo, "sub/deeper/x.py")
    write(repo, "other/.gitignore", "*.log\n")
    write(repo, "other/drop.log", "d\n")
    write(repo, "other/keep.py")
    return {"main.py", "sub/lib.py", "sub/deeper/x.py", "other/.gitignore", "other/keep.py"}


def _odd_exclude_tree(repo: Path, kind: str) -> set[str]:
    """A real .git directory whose info/exclude is odd, beside a valid .gitignore."""
    (repo / ".git" / "info").mkdir(parents=True)
    write(repo, ".git/HEAD", "ref: refs/heads/main\n")
    make_odd(repo / ".git" / "info" / "exclude", kind)
    write(repo, ".gitignore", "*.tmp\n")
    write(repo, "scratch.tmp", "t\n")
    write(repo, "main.py", "def main_entry():\n    return 1\n")
    return {".gitignore", "main.py"}


# What the walk yields for an odd ignore file that is itself a walk entry: a FIFO is a
# special file; a symlink to a device points outside the root.
ODD_ENTRY_REASON = {
    "fifo": SkipReason.SPECIAL_FILE,
    "dev_zero": SkipReason.SYMLINK_OUTSIDE_ROOT,
    "dev_urandom": SkipReason.SYMLINK_OUTSIDE_ROOT,
}
ODD_IGNORE_FILES = (".gitignore", ".codeindexignore", "sub/.gitignore", "sub/.codeindexignore")


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_odd_ignore_files_and_git_file_are_skipped_with_a_warning(
    tmp_path: Path, kind: str
) -> None:
    repo = tmp_path / "repo"
    want = _odd_tree(repo, kind)
    got, warnings = bounded_walk(repo)
    assert {p for p, (reason, _) in got.items() if not reason} == want
    assert {p: r for p, (r, _) in got.items() if r} == dict.fromkeys(
        ODD_IGNORE_FILES, ODD_ENTRY_REASON[kind]
    )
    assert "sub/.git" not in got and ".git" not in got
    why = "fifo" if kind == "fifo" else "symbolic link"
    for rel in ODD_IGNORE_FILES:
        assert any(
            w.startswith(f"{rel}: ignore file skipped, not a regular file ({why})")
            for w in warnings
        ), (rel, warnings)
    assert any(
        w.startswith(f".git: git file skipped, not a regular file ({why})") for w in warnings
    )

    repo2 = tmp_path / "repo2"
    want2 = _odd_exclude_tree(repo2, kind)
    got2, warnings2 = bounded_walk(repo2)
    assert {p for p, (reason, _) in got2.items() if not reason} == want2
    assert warnings2 == [
        f".git/info/exclude: ignore file skipped, not a regular file ({why}); "
        "its patterns do not apply"
    ]


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_index_finishes_beside_odd_ignore_files(tmp_path: Path, kind: str) -> None:
    from codeindex.embedding import FakeEmbedder
    from codeindex.service import CodeIndex

    for layout, build in (("tree", _odd_tree), ("exclude", _odd_exclude_tree)):
        repo = tmp_path / layout
        want = build(repo, kind)
        bounded_walk(repo)  # fails cleanly (no hang, no 10 GB) before the real run
        ci = CodeIndex(fake_settings(repo), embedder=FakeEmbedder())
        report = ci.index()
        assert not report.failed
        assert {f.path for f in ci.list_files(page_size=100).files} == want
        odd = {f.path: f.reason for f in ci.list_files(page_size=100, skipped=True).files}
        if layout == "tree":
            assert odd == dict.fromkeys(ODD_IGNORE_FILES, ODD_ENTRY_REASON[kind])
            assert report.skipped == {ODD_ENTRY_REASON[kind]: len(ODD_IGNORE_FILES)}
            hits = ci.search("lib_helper", k=3, semantic=False).results
            assert hits and hits[0].path == "sub/lib.py"
        else:
            assert odd == {}


def test_ignore_file_over_the_cap_is_skipped_whole_with_a_warning(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = ignore_module.MAX_IGNORE_FILE_BYTES
    # At the cap: applied. One byte over: skipped whole, not truncated, so neither the
    # pattern before the cut nor the one after it applies.
    comments = ("#" * 63 + "\n") * ((cap - len("*.log\n")) // 64)
    at_cap = "*.log\n" + comments + "#" * (cap - len("*.log\n") - len(comments))
    assert len(at_cap) == cap
    write(repo, "ok/.gitignore", at_cap)
    write(repo, "big/.gitignore", at_cap + "\n*.py\n")
    for d in ("ok", "big"):
        write(repo, f"{d}/a.log", "l\n")
        write(repo, f"{d}/a.py")
    with caplog.at_level(logging.WARNING, logger="codeindex.discovery"):
        got = indexed(run(settings_for(repo, max_file_mb=4)))
    assert got == {"ok/.gitignore", "ok/a.py", "big/.gitignore", "big/a.log", "big/a.py"}
    assert [r.getMessage() for r in caplog.records] == [
        f"big/.gitignore: ignore file skipped, larger than {cap} bytes; its patterns do not apply"
    ]


def test_git_file_over_the_cap_is_skipped_with_a_warning(
    tmp_path: Path, repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gitdir = tmp_path / "gitdir"
    write(gitdir, "info/exclude", "scratch.py\n")
    write(repo, "scratch.py")
    (repo / ".git").write_text(f"gitdir: {gitdir}\n")  # a linked worktree
    assert indexed(run(settings_for(repo))) == set()
    cap = ignore_module.MAX_GIT_FILE_BYTES
    (repo / ".git").write_text(f"gitdir: {gitdir}\n" + "#" * cap)
    with caplog.at_level(logging.WARNING, logger="codeindex.discovery"):
        assert indexed(run(settings_for(repo))) == {"scratch.py"}
    assert [r.getMessage() for r in caplog.records] == [
        f".git: git file skipped, larger than {cap} bytes; info/exclude of its git dir is not read"
    ]


# --------------------------------------------------------------------------- generated text

MINIFIED_JS = "var a=function(b){return b*2};" * 700  # ~21 KB on one line
LOCK_TEXT = 'version = 1\n[[package]]\nname = "anyio"\nversion = "4.4.0"\n'

# Machine-written text and the start of the detail it is skipped with.
GENERATED = {
    "uv.lock": "lock file",
    "rust/Cargo.lock": "lock file",
    "poetry.lock": "lock file",
    "ruby/Gemfile.lock": "lock file",
    "web/yarn.lock": "lock file",
    "php/composer.lock": "lock file",
    "Pipfile.lock": "lock file",
    "nix/flake.lock": "lock file",
    "web/package-lock.json": "lock file",
    "web/npm-shrinkwrap.json": "lock file",
    "web/pnpm-lock.yaml": "lock file",
    "go/go.sum": "lock file",
    "static/app.min.js": "minified",
    "static/site.min.css": "minified",
    "static/app.js.map": "source map",
    "img/logo.svg": "svg",
    "img/ICON.SVG": "svg",  # names are matched case-insensitively
    "dist/bundle.js": "minified",  # by content: one 21 KB line
    "data/dump.json": "minified",
    "gen/api.pb.go": "generated marker",
    "gen/schema_pb2.py": "generated marker",
    "gen/Relay.js": "generated marker",
}


def _generated_content(rel: str) -> str:
    if rel.endswith((".lock", ".sum", ".yaml", "lock.json", "shrinkwrap.json")):
        return LOCK_TEXT * 50
    if rel.endswith(".svg"):
        return '<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0h24v24H0z"/></svg>\n'
    if rel == "data/dump.json":
        return '{"rows": [' + ",".join(f'{{"id": {i}, "v": "x{i}"}}' for i in range(600)) + "]}"
    if rel == "gen/api.pb.go":
        return (
            "// Copyright 2024 The Authors.\n// SPDX-License-Identifier: MIT\n\n"
            "// Code generated by protoc-gen-go. DO NOT EDIT.\n\npackage api\n"
        )
    if rel == "gen/schema_pb2.py":
        return (
            "# -*- coding: utf-8 -*-\n"
            "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n"
            "import sys\n"
        )
    if rel == "gen/Relay.js":
        return (
            "/**\n * Copyright (c) Meta.\n *\n * @generated SignedSource<<abc>>\n */\nvar x = 1;\n"
        )
    return MINIFIED_JS


def _source_with_long_line() -> str:
    lines = [f"def handler_{i}(request):\n    return respond(request, {i})\n" for i in range(80)]
    lines.insert(3, "PATTERN = '" + "[a-z0-9]+|" * 60 + "'\n")  # a 600-char line
    # An embedded base64 blob (a logo in a config map) in the first 8 KiB.
    lines.insert(10, "LOGO = 'data:image/svg+xml;base64," + "PHN2ZyB2aWV3Qm94" * 270 + "'\n")
    return "".join(lines)


# Look-alikes and ordinary text that must stay indexed.
KEPT = {
    "lockfile.py": "import fcntl\n" * 20,
    "clock.go": "package clock\n" * 20,
    "deadlock.md": "# Deadlocks\n",
    "svg_render.py": "def render(svg):\n    return svg\n",
    "maps/map.py": "MAP = {}\n",
    "admin.js": "export const admin = true;\n",
    "minimal.css": "body { margin: 0; }\n",
    "go.mod": "module example.com/x\n",
    "package.json": '{"name": "x"}\n',
    "src/long_lines.py": _source_with_long_line(),
    # Prose with one long line per paragraph (how many READMEs are written).
    "docs/guide.md": ("A paragraph that goes on and on about the design. " * 8 + "\n\n") * 20,
    "small_one_liner.js": "var a=1;" * 300,  # 2.4 KB on one line: too small to judge
    # Code that mentions the marker after the header, and a docstring that does.
    "tools/gen.go": (
        "package tools\n\nconst header = `\n// Code generated by tools. DO NOT EDIT.\n`\n"
    ),
    "tools/check.py": '"""Skips files with an @generated tag; do not edit them."""\nimport os\n',
}


def _write_generated_tree(repo: Path) -> None:
    for rel in GENERATED:
        write(repo, rel, _generated_content(rel))
    for rel, text in KEPT.items():
        write(repo, rel, text)


def test_generated_text_is_skipped_by_default_with_the_reason(repo: Path) -> None:
    _write_generated_tree(repo)
    got = run(settings_for(repo))
    assert skipped(got) == dict.fromkeys(GENERATED, SkipReason.GENERATED)
    assert indexed(got) == set(KEPT)
    for rel, why in GENERATED.items():
        detail = got[rel].detail  # type: ignore[union-attr]
        assert detail.startswith(why), (rel, detail)
        # The detail says how to bring the file back.
        assert f"'!{rel.rpartition('/')[2]}'" in detail and "index_generated" in detail
    assert "(*.lock)" in got["uv.lock"].detail  # type: ignore[union-attr]
    assert "line 4" in got["gen/api.pb.go"].detail  # type: ignore[union-attr]


def test_codeindexignore_negation_brings_a_generated_file_back(repo: Path) -> None:
    _write_generated_tree(repo)
    write(repo, ".codeindexignore", "!uv.lock\n!*.svg\n!bundle.js\n")
    # A .gitignore negation is about git, not about noise: it does not bring one back.
    write(repo, ".gitignore", "!poetry.lock\n")
    got = run(settings_for(repo))
    # Ignore patterns are case-sensitive, like git's: *.svg does not bring back ICON.SVG.
    back = {"uv.lock", "img/logo.svg", "dist/bundle.js"}
    assert indexed(got) == set(KEPT) | back | {".codeindexignore", ".gitignore"}
    assert skipped(got) == {rel: SkipReason.GENERATED for rel in GENERATED if rel not in back}
    # A deeper ignore file that ignores the file again still wins (git's precedence).
    write(repo, "img/.codeindexignore", "logo.svg\n")
    got = run(settings_for(repo))
    assert "img/logo.svg" not in got and isinstance(got["dist/bundle.js"], SourceFile)


def test_index_generated_setting_brings_all_back(repo: Path) -> None:
    _write_generated_tree(repo)
    got = run(settings_for(repo, index_generated=True))
    assert skipped(got) == {}
    assert indexed(got) == set(GENERATED) | set(KEPT)
    # Also from the environment, like every other setting.
    s = load_settings(repo, env={"CODEINDEX_INDEX_GENERATED": "true"})
    assert s.index_generated and indexed(run(s)) == indexed(got)


def test_generated_check_reads_only_the_sniff_and_never_opens_lock_files(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_generated_tree(repo)
    write(repo, "dist/huge.js", MINIFIED_JS * 20)  # 420 KB: only its head may be read
    opened: list[str] = []
    reads: list[int] = []
    real_open, real_read = os.open, os.read

    def recording_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        fd = real_open(path, flags, *args, **kwargs)  # (missing ignore files: not opened)
        opened.append(os.path.relpath(path, repo).replace(os.sep, "/"))
        return fd

    def recording_read(fd, n):  # type: ignore[no-untyped-def]
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "read", recording_read)
    got = run(settings_for(repo))
    assert got["dist/huge.js"].reason == SkipReason.GENERATED  # type: ignore[union-attr]
    assert reads and max(reads) <= discovery.SNIFF_BYTES
    assert len(reads) == len(opened)  # one read per opened file
    by_name = {rel for rel, why in GENERATED.items() if not why.startswith(("minified", "gen"))}
    by_name |= {"static/app.min.js", "static/site.min.css"}
    assert not by_name & set(opened)  # decided by name, before any open


def test_check_path_agrees_with_walk_on_generated_text(repo: Path) -> None:
    _write_generated_tree(repo)
    write(repo, ".codeindexignore", "!uv.lock\n")
    for settings in (settings_for(repo), settings_for(repo, index_generated=True)):
        matcher = IgnoreMatcher(settings)
        for rel, item in run(settings).items():
            assert check_path(settings, rel, matcher) == item, rel


@pytest.mark.parametrize(
    ("name", "head", "why"),
    [
        ("x/Cargo.lock", None, "lock file (*.lock)"),
        ("gradle.lockfile", None, "lock file (*.lockfile)"),
        ("x/go.work.sum", None, "lock file (go.work.sum)"),
        ("vendor/jquery-min.js", None, "minified (*-min.js)"),
        ("site.css.map", None, "source map (*.map)"),
        ("a.py", None, None),
        ("a.lock.py", None, None),
        ("a.py", b"x = 1\n" * 2000, None),
        ("a.js", b"/*! lib v1 | MIT */\n" + b"a;" * 5000, "minified"),
        ("a.js", b"a;" * 1000, None),  # 2 KB: too short to judge
        ("a.py", b"# @generated by tool\nx = 1\n", "generated marker"),
        ("a.py", b"x = 1\n# @generated by tool\n", None),  # not in the header
        ("a.h", b"/*\n  Generated file. Do not edit.\n*/\nint x;\n", "generated marker"),
        ("a.xml", b"<?xml version='1.0'?>\n<!-- generated: DO NOT EDIT -->\n<a/>", "generated"),
        ("a.py", b"# This file generates reports. Do not edit the output.\n", None),
    ],
)
def test_generated_reason_rules(name: str, head: bytes | None, why: str | None) -> None:
    got = discovery.generated_reason(name, head)
    if why is None:
        assert got is None
    else:
        assert got is not None and got.startswith(why), got


# --------------------------------------------------------------------------- watcher API


def test_is_ignored_for_the_watcher(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\ndist/\n")
    write(repo, "a/b/.gitignore", "!special.log\n")
    settings = settings_for(repo)
    m = IgnoreMatcher(settings, max_cached_dirs=2)
    assert m.is_ignored("x.log")
    assert not m.is_ignored("x.py")
    assert m.is_ignored("dist", is_dir=True)
    assert m.is_ignored("dist/")
    assert not m.is_ignored("dist")  # a *file* named dist: dir-only pattern
    assert m.is_ignored("dist/any/thing.py")  # under an ignored directory
    assert not m.is_ignored("a/b/special.log")  # nested .gitignore loaded lazily
    assert m.is_ignored("a/b/other.log")
    assert m.is_ignored(".git/index")
    assert m.is_ignored(".codeindex/chunks.lance", is_dir=True)
    assert m.is_ignored("src/.env.production")
    assert m.is_ignored("../elsewhere.py")
    assert not m.is_ignored("")
    assert len(m._cache) <= 2  # bounded LRU
    # The cache is kept until invalidate(): the watcher calls it on ignore-file changes.
    write(repo, ".gitignore", "*.py\n")
    assert not m.is_ignored("x.py")
    m.invalidate()
    assert m.is_ignored("x.py")
    assert not m.is_ignored("x.log")


def test_check_path_agrees_with_walk(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\n")
    write(repo, "src/app.py")
    write(repo, "src/data.bin", b"\0\1")
    write(repo, "src/big.txt", "y" * 5000)
    write(repo, "link.py", "z = 1\n")
    os.symlink("link.py", repo / "alias.py")
    os.symlink("nowhere", repo / "dangling.py")
    os.mkfifo(repo / "fifo")
    settings = settings_for(repo).replace(max_file_mb=0.004)
    matcher = IgnoreMatcher(settings)
    walked = run(settings)
    assert walked  # sanity
    for rel, item in walked.items():
        assert check_path(settings, rel, matcher) == item, rel
    # Not yielded by walk() -> None.
    write(repo, "debug.log", "d\n")
    write(repo, ".env", "S=1\n")
    assert check_path(settings, "debug.log", matcher) is None
    assert check_path(settings, ".env") is None
    assert check_path(settings, "src") is None  # a directory
    assert check_path(settings, "missing.py") is None
    assert check_path(settings, ".git/config") is None
    # Normalised, non-escaping paths are fine.
    same = check_path(settings, "./src/../src/app.py")
    assert isinstance(same, SourceFile) and same.path == "src/app.py"


def test_check_path_through_symlinked_dirs(repo: Path) -> None:
    write(repo, "real/x.py")
    os.symlink("real", repo / "alias")
    write(repo, ".gitignore", "build/\n")
    write(repo, "build/gen.py")
    os.symlink("build", repo / "generated")
    settings = settings_for(repo)
    assert check_path(settings, "alias/x.py") is None  # walk() indexes real/x.py instead
    assert isinstance(check_path(settings, "generated/gen.py"), SourceFile)
    assert check_path(settings, "build/gen.py") is None


@pytest.mark.parametrize("bad", ["../x.py", "a/../../x.py", "..", "/etc/passwd", "x\0y"])
def test_refuses_escaping_and_absolute_paths(repo: Path, bad: str) -> None:
    settings = settings_for(repo)
    with pytest.raises(PathOutsideRootError):
        check_path(settings, bad)
    with pytest.raises(PathOutsideRootError):
        resolve_inside_root(settings, bad)


def test_refuses_symlinks_out_of_root(tmp_path: Path, repo: Path) -> None:
    write(tmp_path / "outside", "secret.py")
    os.symlink(tmp_path / "outside", repo / "ext_dir")
    os.symlink(tmp_path / "outside" / "secret.py", repo / "ext_file.py")
    settings = settings_for(repo)
    for rel in ("ext_dir/secret.py", "ext_file.py", "ext_dir"):
        with pytest.raises(PathOutsideRootError, match="outside the indexed root"):
            check_path(settings, rel)
        with pytest.raises(PathOutsideRootError, match="outside the indexed root"):
            resolve_inside_root(settings, rel)
    with pytest.raises(PathOutsideRootError, match="absolute"):
        resolve_inside_root(settings, str(repo / "a.py"))  # absolute even if inside


def test_resolve_inside_root(repo: Path) -> None:
    write(repo, "src/app.py")
    write(repo, ".env", "S=1\n")
    os.symlink("src", repo / "code")
    os.symlink(".env", repo / "notes.txt")
    settings = settings_for(repo)
    real_root = Path(os.path.realpath(repo))
    assert resolve_inside_root(settings, "src/app.py") == real_root / "src" / "app.py"
    assert resolve_inside_root(settings, "code/app.py") == real_root / "src" / "app.py"
    assert resolve_inside_root(settings, "src/new.py") == real_root / "src" / "new.py"
    assert resolve_inside_root(settings, "") == real_root
    for denied in (".env", "notes.txt", ".git/config", "a/.ssh/id_rsa", ".codeindex/x"):
        with pytest.raises(PathOutsideRootError, match="deny-listed"):
            resolve_inside_root(settings, denied)


def test_module_only_imports_allowed_stages() -> None:
    package = Path(discovery.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) > 1
    for module in modules:
        source = module.read_text()
        imports = [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
        for ln in imports:
            mod = ln.split()[1]
            assert (
                not mod.startswith("codeindex.")
                or mod.startswith("codeindex.discovery.")
                or mod
                in {
                    "codeindex.types",
                    "codeindex.config",
                    "codeindex.languages",
                    "codeindex.errors",
                    "codeindex.reading",
                }
            ), f"{module.name}: {ln}"
