"""The CLI as users run it: a real subprocess for the main flows, in-process for
the error paths that need a fault injected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeindex import cli
from codeindex.embedding import FAKE_MODEL
from tests.conftest import UTC_ISO


def run(args: list[str], cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "CODEINDEX_MODEL": FAKE_MODEL,
        "CODEINDEX_VERSION_RETENTION_SECONDS": "0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "codeindex", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("argv", "expect"),
    [(["--help"], ("search", "list-files")), (["watch", "--help"], ("--debounce-ms", "--polling"))],
)
def test_help_is_fast_and_does_not_import_torch(argv: list[str], expect: tuple[str, ...]) -> None:
    code = (
        f"import sys\nfrom codeindex.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'lancedb' not in sys.modules, 'heavy import'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert all(word in res.stdout for word in expect), res.stdout


def test_index_search_list_status_json(sample_repo: Path) -> None:
    res = run(["index", str(sample_repo), "--json"])
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    for key in (
        "added",
        "updated",
        "unchanged",
        "deleted",
        "skipped",
        "chunks_embedded",
        "chunks_reused",
        "seconds",
        "peak_rss_bytes",
    ):
        assert key in rep
    assert rep["added"] == 12 and rep["skipped"] == {"binary": 1}

    res = run(["search", "validate_jwt", "--path", str(sample_repo), "--json", "-k", "3"])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"query", "results", "next_cursor", "coverage"}
    assert out["results"][0]["path"] == "auth/tokens.py"
    assert out["coverage"] == 1.0

    res = run(["status", "--path", str(sample_repo), "--json"])
    st = json.loads(res.stdout)
    assert st["state"] == "ready" and st["files"] == 12 and st["coverage"] == 1.0
    assert st["skipped"] == {"binary": 1} and st["dimension"] == 384
    assert UTC_ISO.fullmatch(st["last_indexed_at"])
    for key in ("rss_bytes", "peak_rss_bytes", "available_bytes", "limit_bytes"):
        assert st["memory"][key] > 0

    # Edit after indexing: status notices the tree moved on.
    (sample_repo / "net/retry.ts").write_text("// changed\n")
    st = json.loads(run(["status", "--path", str(sample_repo), "--json"]).stdout)
    assert st["state"] == "stale"


def test_list_files_pages_visit_every_file_once(sample_repo: Path) -> None:
    assert run(["index", str(sample_repo), "--json"]).returncode == 0
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        args = ["list-files", "--path", str(sample_repo), "--page-size", "5", "--json"]
        if cursor:
            args += ["--cursor", cursor]
        res = run(args)
        assert res.returncode == 0, res.stderr
        page = json.loads(res.stdout)
        assert page["total"] == 12
        assert all(UTC_ISO.fullmatch(f["indexed_at"]) for f in page["files"])
        seen += [f["path"] for f in page["files"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 12
    skipped = json.loads(
        run(["list-files", "--path", str(sample_repo), "--skipped", "--json"]).stdout
    )
    assert skipped["files"] == [
        {"path": "storage/blob.dat", "reason": "binary", "detail": skipped["files"][0]["detail"]}
    ]


def test_clear_errors_exit_1(sample_repo: Path, tmp_path: Path) -> None:
    res = run(["search", "x", "--path", str(sample_repo)])
    assert res.returncode == 1 and "run `codeindex index" in res.stderr
    res = run(["index", str(tmp_path / "nope")])
    assert res.returncode == 1 and "not a directory" in res.stderr
    assert run(["index", str(sample_repo)]).returncode == 0
    res = run(["list-files", "--path", str(sample_repo), "--cursor", "garbage!!"])
    assert res.returncode == 1 and "malformed cursor" in res.stderr
    res = run(["search", "x", "--path", str(sample_repo), "-k", "1000"])
    assert res.returncode == 1 and "between 1 and 100" in res.stderr
    assert "Traceback" not in res.stderr


def test_over_long_paths_and_forged_cursors_are_one_line_errors(sample_repo: Path) -> None:
    assert run(["index", str(sample_repo)]).returncode == 0
    long = "a" * 5000
    first = json.loads(run(["search", "x", "--path", str(sample_repo), "-k", "1", "--json"]).stdout)
    assert first["next_cursor"]
    for args, needle in [
        (["list-files", "--path", long], "the root"),
        (["list-files", "--path", str(sample_repo), "--glob", long], "the glob"),
        (["search", "x", "--path", str(sample_repo), "--glob", long], "the glob"),
        (["list-files", "--path", str(sample_repo), "--index-dir", long], "index directory"),
        # Another index's cursor, as any cursor not signed with this index's key.
        (
            ["search", "x", "--path", str(sample_repo), "-k", "1", "--cursor", "e30.AAAA"],
            "malformed",
        ),
    ]:
        res = run(args)
        assert res.returncode == 1 and needle in res.stderr, res.stderr[-500:]
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    res = run(
        ["search", "x", "--path", str(sample_repo), "-k", "1", "--cursor", first["next_cursor"]]
    )
    assert res.returncode == 0, res.stderr


def test_unreadable_file_exits_2_and_is_listed(sample_repo: Path, monkeypatch, capsys) -> None:
    # Tests run as root, which reads chmod-000 files: inject the permission error where
    # the indexer opens a file it is about to read.
    from codeindex import pipeline

    real_open = pipeline.open_binary
    target = str(sample_repo / "net/ratelimit.go")

    def fake_open(path: str, **kwargs):
        if str(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(path, **kwargs)

    monkeypatch.setattr(pipeline, "open_binary", fake_open)
    monkeypatch.setenv("CODEINDEX_MODEL", FAKE_MODEL)
    code = cli.main(["index", str(sample_repo), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == cli.EXIT_PARTIAL
    assert rep["failed"][0]["path"] == "net/ratelimit.go"
    assert rep["skipped"].get("unreadable") == 1
    assert rep["added"] == 11


def test_second_writer_no_wait_fails_clearly(sample_repo: Path) -> None:
    from codeindex.config import load_settings
    from codeindex.locking import WriterLock

    lock = WriterLock(load_settings(sample_repo, env={}).index_dir)
    lock.acquire()
    try:
        res = run(["index", str(sample_repo), "--no-wait"])
        assert res.returncode == 1
        assert "another codeindex process" in res.stderr and "--no-wait" in res.stderr
    finally:
        lock.release()


@pytest.mark.parametrize("cmd", [["status"], ["list-files"]])
def test_commands_on_missing_index(tmp_path: Path, cmd: list[str]) -> None:
    res = run([*cmd, "--path", str(tmp_path), "--json"])
    if cmd == ["status"]:
        assert res.returncode == 0 and json.loads(res.stdout)["state"] == "missing"
    else:
        assert res.returncode == 1 and "codeindex index" in res.stderr
