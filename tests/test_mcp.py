"""The MCP server, driven by the SDK's real stdio client against a real subprocess
(``python -m codeindex mcp``), plus unit tests of max_tokens packing.

Most tests share one server per module on a copy of the sample repository, with the
fast fake embedder (the model is not the point here) and ``--no-watch`` so that what
gets indexed when is decided by the tests alone. One test uses the real model.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from codeindex import service
from codeindex.embedding import FakeEmbedder
from codeindex.locking import WriterLock
from codeindex.mcp.packing import CHARS_PER_TOKEN, ELISION, merge_by_file, pack
from tests.conftest import INDEXABLE as FIXTURE_FILES
from tests.conftest import UTC_ISO, copy_fixture, fake_settings

REPO = Path(__file__).resolve().parent.parent  # the checkout whose codeindex is tested
TOOLS = {"search_code", "list_files", "get_code", "find_similar", "index_status", "reindex"}
FAKE_ENV = {"CODEINDEX_MODEL": "fake-hash-384", "CODEINDEX_VERSION_RETENTION_SECONDS": "0"}
CALL_TIMEOUT = 120.0
SECRETS = ("TOP_SECRET", "hunter2", "fixture-not-a-real-secret")  # never served


class McpServerProcess:
    """A ``codeindex mcp`` subprocess and a real stdio ClientSession to it.

    The session lives in an event loop on a background thread, so synchronous tests
    (and module-scoped fixtures) can call tools; ``run`` submits any coroutine.
    """

    def __init__(self, root: Path, *args: str, env: dict[str, str], log: Path) -> None:
        self.root = root
        self.params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "codeindex", "mcp", "--root", str(root), *args],
            # PYTHONPATH: the server runs the codeindex these tests belong to, not
            # whichever one the interpreter would import from its own site-packages.
            env={
                "PYTHONPATH": str(REPO),
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                **env,
            },
            cwd=str(root),
        )
        self.log_path = log
        self.transport_errors: list[Exception] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Future[None] | None = None
        self.session: ClientSession = self.run(self._open())

    async def _open(self) -> ClientSession:
        ready: asyncio.Future[ClientSession] = self.loop.create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._main(ready))
        return await ready

    async def _main(self, ready: asyncio.Future[ClientSession]) -> None:
        assert self._stop is not None
        try:
            with open(self.log_path, "w") as errlog:
                async with (
                    stdio_client(self.params, errlog=errlog) as (read, write),
                    ClientSession(read, write, message_handler=self._on_message) as session,
                ):
                    self.init = await session.initialize()
                    ready.set_result(session)
                    await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def _on_message(self, message: Any) -> None:
        # Anything on stdout that is not protocol arrives here as an exception.
        if isinstance(message, Exception):
            self.transport_errors.append(message)

    def run(self, coro: Any, timeout: float = CALL_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Any) -> Any:
        """Start ``coro`` in the client loop; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, name: str, args: dict[str, Any] | None = None, **kw: Any) -> CallToolResult:
        return self.run(self.session.call_tool(name, args or {}, **kw))

    def ok(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        res = self.call(name, args)
        assert not res.is_error, f"{name}({args}) failed: {text(res)}"
        assert res.structured_content is not None
        return res.structured_content

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        """Poll index_status until the catch-up finished and every chunk has a vector."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.ok("index_status")
            job = st["server"]["background_job"] or {}  # None until the catch-up starts
            done = st["state"] == "ready" and job.get("state") == "done"
            if done and st["coverage"] == 1.0 and st["server"]["model_state"] == "loaded":
                return st
            assert time.monotonic() < deadline, f"index never became ready: {st}"
            self.run(asyncio.sleep(0.05))  # a poll interval, not synchronisation

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._task is not None:
            self.run(asyncio.wait([self._task]), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def text(res: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in res.content)


def assert_tool_error(res: CallToolResult, *needles: str) -> str:
    msg = text(res)
    assert res.is_error, f"expected a tool error, got {msg[:300]}"
    for needle in needles:
        assert needle.lower() in msg.lower(), f"{needle!r} not in {msg!r}"
    return msg


def walk_schema(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_schema(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_schema(value)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("outside") / "secret.py"
    target.write_text("TOP_SECRET = 'outside the root'\n")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, outside: Path) -> Iterator[McpServerProcess]:
    base = tmp_path_factory.mktemp("mcp")
    root = copy_fixture(base / "repo")
    (root / "leak.py").symlink_to(outside)  # a symlink pointing out of the root
    (root / "debug.log").write_text("password=hunter2\n")  # gitignored (*.log)
    proc = McpServerProcess(root, "--no-watch", env=FAKE_ENV, log=base / "server.stderr")
    try:
        proc.wait_ready()
        yield proc
        assert not proc.transport_errors, "the server wrote non-protocol output to stdout"
    finally:
        proc.close()


# ------------------------------------------------------------------- tool surface
def test_tools_have_union_free_schemas_and_truthful_annotations(server: McpServerProcess):
    tools = {t.name: t for t in server.run(server.session.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description, tool.name
        for node in walk_schema(tool.input_schema):
            assert not {"anyOf", "oneOf", "allOf"} & set(node), (tool.name, node)
            assert not isinstance(node.get("type"), list), (tool.name, node)
        props = tool.input_schema.get("properties", {})
        assert "ctx" not in props  # the SDK's Context is injected, not a parameter
        ann = tool.annotations
        assert ann is not None, tool.name
        assert ann.destructive_hint is False, tool.name
        if tool.name == "reindex":
            assert ann.read_only_hint is False
            assert ann.idempotent_hint is True
        else:
            assert ann.read_only_hint is True, tool.name
    assert set(tools["search_code"].input_schema["properties"]) == {
        "query",
        "k",
        "path_glob",
        "language",
        "cursor",
        "max_tokens",
    }
    assert tools["reindex"].input_schema["properties"]["paths"]["type"] == "array"
    assert server.init.server_info.name == "codeindex"


# ----------------------------------------------------------------------- search
def test_search_finds_the_known_answer(server: McpServerProcess):
    res = server.ok("search_code", {"query": "validate_jwt", "k": 5})
    assert res["results"], res
    top = res["results"][0]
    assert top["path"] == "auth/tokens.py"
    assert set(top) >= {"path", "start_line", "end_line", "score", "symbol", "language", "snippet"}
    assert "validate_jwt" in top["snippet"]
    assert res["coverage"] == 1.0 and res["semantic"] is True
    assert "note" not in res  # nothing is being indexed, the model is loaded


def test_search_pages_with_cursor_and_filters(server: McpServerProcess):
    first = server.ok("search_code", {"query": "function", "k": 2})
    assert first["next_cursor"]
    second = server.ok("search_code", {"query": "function", "k": 2, "cursor": first["next_cursor"]})
    seen = {(h["path"], h["start_line"]) for h in first["results"]}
    assert seen.isdisjoint((h["path"], h["start_line"]) for h in second["results"])
    only_go = server.ok("search_code", {"query": "rate limit", "language": "go"})
    assert only_go["results"] and {h["path"] for h in only_go["results"]} == {"net/ratelimit.go"}
    globbed = server.ok("search_code", {"query": "token", "path_glob": "auth/**"})
    assert globbed["results"]
    assert all(h["path"].startswith("auth/") for h in globbed["results"])


def test_concurrent_searches_all_succeed(server: McpServerProcess):
    queries = ["validate_jwt", "retry with backoff", "LRU cache eviction", "parse csv"] * 5

    async def many() -> list[CallToolResult]:
        return await asyncio.gather(
            *(server.session.call_tool("search_code", {"query": q, "k": 3}) for q in queries)
        )

    results = server.run(many())
    assert len(results) == 20
    for q, res in zip(queries, results, strict=True):
        assert not res.is_error, text(res)
        assert res.structured_content["query"] == q
        assert res.structured_content["results"]
    jwt = [r for q, r in zip(queries, results, strict=True) if q == "validate_jwt"]
    assert {r.structured_content["results"][0]["path"] for r in jwt} == {"auth/tokens.py"}


def test_max_tokens_packs_results_into_the_budget(server: McpServerProcess):
    full = server.ok("search_code", {"query": "validate_jwt token", "k": 10})
    full_chars = len(json.dumps(full["results"], ensure_ascii=False))
    for budget in (60, 150, 400):
        res = server.ok(
            "search_code", {"query": "validate_jwt token", "k": 10, "max_tokens": budget}
        )
        packed = res["results"]
        assert len(json.dumps(packed, ensure_ascii=False)) <= CHARS_PER_TOKEN * budget
        assert res["max_tokens"] == budget
        assert len({h["path"] for h in packed}) == len(packed)  # one entry per file
        assert full_chars > CHARS_PER_TOKEN * budget  # the budget really bit
        assert res["omitted"] > 0 or any(h.get("truncated") for h in packed)
    big = server.ok("search_code", {"query": "validate_jwt token", "k": 10, "max_tokens": 400})
    assert big["results"][0]["path"] == "auth/tokens.py"  # best hit first


# ------------------------------------------------------------------- bad input
def test_bad_input_is_an_actionable_tool_error_and_the_server_stays_up(
    server: McpServerProcess,
):
    cases = [
        ("search_code", {"query": "x", "k": 0}, ["k must be between 1 and 100"]),
        ("search_code", {"query": "x", "k": 1000}, ["k must be between 1 and 100"]),
        ("search_code", {"query": "x", "cursor": "not-a-cursor"}, ["cursor", "drop the cursor"]),
        ("search_code", {"query": "   "}, ["query is empty"]),
        ("search_code", {"query": "x" * 5000}, ["under 2000"]),
        ("search_code", {"query": "x", "max_tokens": -1}, ["max_tokens"]),
        ("list_files", {"page_size": 0}, ["page_size must be between 1 and 500"]),
        ("list_files", {"page_size": 501}, ["page_size must be between 1 and 500"]),
        ("list_files", {"cursor": "AAAA"}, ["cursor"]),
        ("find_similar", {"path": "auth/tokens.py", "start_line": 1, "end_line": 3, "k": 0}, ["k"]),
        ("get_code", {"path": "auth/tokens.py", "start_line": 0, "end_line": 3}, ["start_line"]),
        ("get_code", {"path": "auth/tokens.py", "start_line": 9000, "end_line": 9001}, ["only"]),
        ("get_code", {"path": "nope/missing.py", "start_line": 1, "end_line": 2}, ["not a file"]),
        ("reindex", {"paths": ["../etc/passwd"]}, [".."]),
        ("reindex", {"paths": ["auth"]}, ["directory"]),
        ("get_code", {"path": "a" * 5000, "start_line": 1, "end_line": 2}, ["5000 char"]),
        ("find_similar", {"path": f"{'b' * 300}.py", "start_line": 1, "end_line": 2}, ["255"]),
        ("search_code", {"query": "x", "path_glob": "a" * 5000}, ["the glob"]),
        ("list_files", {"path_glob": "a" * 5000}, ["the glob"]),
        ("search_code", {"query": "x", "k": "many"}, ["k"]),  # fails the input schema
    ]
    for name, args, needles in cases:
        assert_tool_error(server.call(name, args), *needles)
        assert server.ok("search_code", {"query": "validate_jwt", "k": 1})["results"]

    # A cursor from one request is refused for another, with what to do instead.
    page = server.ok("list_files", {"page_size": 3})
    other = server.call("search_code", {"query": "x", "cursor": page["next_cursor"]})
    assert_tool_error(other, "another command")
    again = server.ok("search_code", {"query": "jwt", "k": 2})
    changed = server.call("search_code", {"query": "other", "k": 2, "cursor": again["next_cursor"]})
    assert_tool_error(changed, "different query")

    # A forged cursor (an edited offset; the signature no longer matches) is refused.
    cursor = again["next_cursor"]
    token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    forged = base64.urlsafe_b64encode(token.replace(b'"o":2', b'"o":999999999999')).decode()
    bad = server.call("search_code", {"query": "jwt", "k": 2, "cursor": forged.rstrip("=")})
    assert_tool_error(bad, "malformed cursor", "drop the cursor")


def test_lowered_limit_settings_are_enforced_and_shown(tmp_path: Path):
    root = copy_fixture(tmp_path / "repo")
    limits = {"CODEINDEX_MAX_K": "3", "CODEINDEX_MAX_PAGE_SIZE": "4"}
    limits |= {"CODEINDEX_MAX_REINDEX_PATHS": "2", "CODEINDEX_MAX_CODE_LINES": "5"}
    env = {**FAKE_ENV, **limits}
    proc = McpServerProcess(root, "--no-watch", env=env, log=tmp_path / "server.stderr")
    try:
        tools = {
            t.name: t.input_schema["properties"] for t in proc.run(proc.session.list_tools()).tools
        }
        # The input schema states the limits this server enforces...
        assert tools["search_code"]["k"]["description"] == "Hits per page, 1-3."
        assert tools["find_similar"]["k"]["description"] == "Number of hits, 1-3."
        assert tools["list_files"]["page_size"]["description"] == "Files per page, 1-4."
        assert tools["get_code"]["end_line"]["description"] == "Last line, inclusive (≤5 lines)."
        assert tools["search_code"]["query"]["description"].endswith("(≤2000 chars).")  # default
        # ...and the service (k, page_size, lines) and the server (reindex paths) refuse more.
        assert_tool_error(proc.call("search_code", {"query": "x", "k": 4}), "between 1 and 3")
        args = {"path": "auth/tokens.py", "start_line": 1, "end_line": 3, "k": 4}
        assert_tool_error(proc.call("find_similar", args), "between 1 and 3")
        assert_tool_error(proc.call("list_files", {"page_size": 5}), "between 1 and 4")
        args = {"path": "auth/tokens.py", "start_line": 1, "end_line": 6}
        assert_tool_error(proc.call("get_code", args), "at most 5 lines")
        paths = ["auth/tokens.py", "net/retry.ts", "net/ratelimit.go"]
        assert_tool_error(proc.call("reindex", {"paths": paths}), "3 paths is more than 2")
        proc.wait_ready()
        assert len(proc.ok("search_code", {"query": "function", "k": 3})["results"]) == 3
        assert proc.ok("reindex", {"paths": paths[:2]})["state"] == "done"
    finally:
        proc.close()
    assert not proc.transport_errors


# ------------------------------------------------------------------ list_files
def test_list_files_pages_every_file_exactly_once(server: McpServerProcess):
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = server.ok("list_files", {"page_size": 3, "cursor": cursor})
        pages += 1
        assert len(page["files"]) <= 3
        assert page["index_changed"] is False
        assert page["total"] == 12
        seen += [f["path"] for f in page["files"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 20
    assert sorted(seen) == sorted(FIXTURE_FILES)
    assert len(seen) == len(set(seen)) == 12
    py = server.ok("list_files", {"language": "python"})
    assert [f["path"] for f in py["files"]] == ["auth/tokens.py"]
    skipped = server.ok("list_files", {"include_skipped": True})
    reasons = {f["path"]: f["reason"] for f in skipped["files"]}
    assert reasons["storage/blob.dat"] == "binary"


# -------------------------------------------------------------------- get_code
def test_get_code_returns_the_exact_current_lines(server: McpServerProcess):
    lines = (server.root / "auth/tokens.py").read_text().split("\n")
    res = server.ok("get_code", {"path": "auth/tokens.py", "start_line": 2, "end_line": 6})
    assert res["text"] == "\n".join(lines[1:6])
    assert (res["path"], res["start_line"], res["end_line"]) == ("auth/tokens.py", 2, 6)


def test_get_code_refuses_everything_outside_the_root(server: McpServerProcess, outside: Path):
    refusals = {
        "../x": "..",
        str(outside): "absolute",
        "auth/../../x": "..",
        "config/.env": "deny-listed",
        "leak.py": "symlink",
        ".codeindex/writer.lock": "deny-listed",
        "debug.log": "ignored",
    }
    for path, why in refusals.items():
        res = server.call("get_code", {"path": path, "start_line": 1, "end_line": 1})
        msg = assert_tool_error(res, why)
        assert not any(secret in msg for secret in SECRETS), msg
    # Their content never comes back through search either.
    for query in ("TOP_SECRET outside the root", "password hunter2", "API_SECRET"):
        res = server.ok("search_code", {"query": query, "k": 20})
        snippets = " ".join(h["snippet"] for h in res["results"])
        assert not any(secret in snippets for secret in SECRETS), query


# ---------------------------------------------------------------- find_similar
def test_find_similar_excludes_the_range_itself(server: McpServerProcess):
    hit = server.ok("search_code", {"query": "validate_jwt", "k": 1})["results"][0]
    res = server.ok(
        "find_similar",
        {"path": hit["path"], "start_line": hit["start_line"], "end_line": hit["end_line"], "k": 5},
    )
    assert 0 < len(res["results"]) <= 5
    for r in res["results"]:
        overlaps = (
            r["path"] == hit["path"]
            and r["start_line"] <= hit["end_line"]
            and r["end_line"] >= hit["start_line"]
        )
        assert not overlaps, r


# ---------------------------------------------------------------- index_status
def test_index_status_reports_state_counts_and_telemetry(server: McpServerProcess):
    st = server.ok("index_status")
    assert st["state"] == "ready"
    assert st["files"] == 12 and st["chunks"] > 0 and st["coverage"] == 1.0
    assert st["model"] == "fake-hash-384"
    assert UTC_ISO.fullmatch(st["last_indexed_at"])
    for key in ("rss_bytes", "peak_rss_bytes", "available_bytes", "limit_bytes"):
        assert st["memory"][key] > 0, key
    assert st["watcher"]["running"] is False  # --no-watch
    assert "no-watch" in st["watcher"]["note"]
    info = st["server"]
    assert info["pid"] != os.getpid()
    assert info["model_state"] == "loaded"
    job = info["background_job"]
    assert job["kind"] in ("catch-up", "reindex")
    assert UTC_ISO.fullmatch(job["started_at"]) and UTC_ISO.fullmatch(job["finished_at"])


# --------------------------------------------------------------------- reindex
def test_reindex_reports_progress_and_makes_a_new_file_searchable(server: McpServerProcess):
    query = "quokka_session_rotation"
    before = server.ok("search_code", {"query": query, "k": 5})
    assert all(h["path"] != "auth/sessions.py" for h in before["results"])
    (server.root / "auth/sessions.py").write_text(
        "def quokka_session_rotation(session):\n"
        '    """Rotate the session id after login."""\n'
        "    session.rotate()\n"
        "    return session\n"
    )
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    res = server.call("reindex", {"paths": ["auth/sessions.py"]}, progress_callback=on_progress)
    assert not res.is_error, text(res)
    out = res.structured_content
    assert out["state"] == "done"
    assert out["job"]["report"]["added"] == 1
    assert progress, "no progress notifications arrived"
    values = [p[0] for p in progress]
    assert values == sorted(set(values))  # strictly increasing, as MCP requires
    assert progress[-1][0] == progress[-1][1] and progress[-1][2] == "done"

    after = server.ok("search_code", {"query": query, "k": 5})
    assert after["results"][0]["path"] == "auth/sessions.py"
    listed = server.ok("list_files", {"page_size": 100})
    assert "auth/sessions.py" in {f["path"] for f in listed["files"]}

    # The whole root, nothing changed: a quick no-op that still answers "done".
    whole = server.ok("reindex", {})
    assert whole["state"] == "done" and whole["job"]["report"]["added"] == 0


def test_second_reindex_while_one_runs_says_already_running(server: McpServerProcess):
    # Hold the writer lock from this process: the server's run must wait for it, so
    # it is still running when the second call arrives (no timing involved).
    lock = WriterLock(server.root / ".codeindex")
    lock.acquire()
    try:
        first = server.submit(server.session.call_tool("reindex", {}))
        deadline = time.monotonic() + 30
        while True:
            job = server.ok("index_status")["server"]["background_job"]
            if job["kind"] == "reindex" and job["state"] == "running":
                break
            assert time.monotonic() < deadline, job
            server.run(asyncio.sleep(0.02))
        second = server.ok("reindex", {"paths": ["auth/tokens.py"]})
        assert second["state"] == "already running"
        assert second["job"]["kind"] == "reindex"
        # Searches are not blocked by a waiting or running index.
        assert server.ok("search_code", {"query": "validate_jwt", "k": 1})["results"]
        assert not first.done()
    finally:
        lock.release()
    res = first.result(CALL_TIMEOUT)
    assert not res.is_error, text(res)
    assert res.structured_content["state"] in ("done", "running")
    server.wait_ready()


# ------------------------------------------------------------ no index yet
def test_search_before_any_index_exists_returns_empty_with_a_note(tmp_path: Path):
    root = copy_fixture(tmp_path / "repo")
    lock = WriterLock(root / ".codeindex")
    lock.acquire()  # the server's catch-up waits, so no index exists yet
    proc = McpServerProcess(root, "--no-watch", env=FAKE_ENV, log=tmp_path / "server.stderr")
    try:
        res = proc.ok("search_code", {"query": "validate_jwt"})
        assert res["results"] == [] and res["coverage"] == 0.0
        assert "index" in res["note"]
        files = proc.ok("list_files")
        assert files["files"] == [] and files["total"] == 0 and files["note"]
        deadline = time.monotonic() + 60
        while True:  # the catch-up job starts in the background, then waits for the lock
            st = proc.ok("index_status")
            assert st["state"] == "missing"
            job = st["server"]["background_job"]
            if job and job["phase"] == "waiting for another writer":
                break
            assert time.monotonic() < deadline, st["server"]
            proc.run(asyncio.sleep(0.02))  # a poll interval, not synchronisation
        assert_tool_error(proc.call("search_code", {"query": "x", "k": 0}), "k must be")
        lock.release()
        proc.wait_ready()
        assert proc.ok("search_code", {"query": "validate_jwt"})["results"]
    finally:
        lock.release()
        proc.close()
    assert not proc.transport_errors


# -------------------------------------------------------------------- http
def test_http_transport_serves_on_loopback_only(tmp_path: Path):
    root = copy_fixture(tmp_path / "repo")
    # Indexed before the server starts (same model and options as FAKE_ENV), so its
    # first search has hits: nothing to wait for but the socket.
    service.CodeIndex(fake_settings(root), embedder=FakeEmbedder()).index()
    with socket.socket() as sock:  # a free port (tiny race, acceptable in a test)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_file = tmp_path / "mcp.log"
    argv = [sys.executable, "-m", "codeindex", "mcp", "--http", "--port", str(port)]
    argv += ["--root", str(root), "--no-watch", "--log-file", str(log_file)]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **FAKE_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while True:  # poll until the socket listens
            listening = [c for c in server.net_connections() if c.status == psutil.CONN_LISTEN]
            if listening:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)  # a poll interval, not synchronisation
        assert {(c.laddr.ip, c.laddr.port) for c in listening} == {("127.0.0.1", port)}

        async def use() -> dict[str, Any]:
            url = f"http://127.0.0.1:{port}/mcp"
            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = await session.list_tools()
                assert {t.name for t in tools.tools} == TOOLS
                res = await session.call_tool("search_code", {"query": "validate_jwt", "k": 1})
                assert not res.is_error, text(res)
                return res.structured_content

        out = asyncio.run(use())
        assert out["results"][0]["path"] == "auth/tokens.py"
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    assert stdout == ""  # HTTP mode writes nothing to stdout either
    assert "serving MCP on http://127.0.0.1" in log_file.read_text()


# --------------------------------------------------------------- real model
@pytest.mark.model
def test_real_model_server_searches_an_indexed_root_right_away(real_index, tmp_path: Path):
    # A copy (index included): the session's real_index is shared with other modules.
    root = tmp_path / "repo"
    shutil.copytree(real_index.settings.root, root, symlinks=True)
    env = {  # the real bundled model, unloaded after 1.2 s idle
        "CODEINDEX_VERSION_RETENTION_SECONDS": "0",
        "CODEINDEX_IDLE_UNLOAD_MINUTES": "0.02",
    }
    proc = McpServerProcess(root, env=env, log=tmp_path / "server.stderr")
    try:
        # The very first call after initialize succeeds even while the model is still
        # loading (then from the full-text side only, saying so).
        first = proc.call("search_code", {"query": "validate_jwt", "k": 3})
        assert not first.is_error, text(first) + proc.stderr()
        out = first.structured_content
        assert out["coverage"] == 1.0
        assert out["results"][0]["path"] == "auth/tokens.py"
        assert out["semantic"] or "full-text" in out["note"]
        # Once the model is loaded, a natural-language query finds the answer.
        deadline = time.monotonic() + 120
        while True:
            res = proc.ok("search_code", {"query": "where are JWTs validated", "k": 3})
            if res["semantic"]:
                break
            assert time.monotonic() < deadline, proc.stderr()[-2000:]
            proc.run(asyncio.sleep(0.1))  # a poll interval, not synchronisation
        assert res["results"][0]["path"] == "auth/tokens.py"
        st = proc.ok("index_status")
        assert st["model"] == "all-MiniLM-L6-v2"
        # Watching is on by default: running if this build has codeindex.watch (then a
        # new file becomes searchable without reindex), else a note saying why not.
        if not st["watcher"].get("running"):
            assert "unavailable" in st["watcher"]["note"]
        else:
            check_watcher_keeps_index_fresh(proc, deadline)
        check_idle_unload_and_reload(proc, deadline)
    finally:
        proc.close()
    assert not proc.transport_errors


def check_idle_unload_and_reload(proc: McpServerProcess, deadline: float) -> None:
    query = {"query": "where are JWTs validated", "k": 5}
    before = proc.ok("search_code", query)
    server = psutil.Process(proc.ok("index_status")["server"]["pid"])
    rss_loaded = server.memory_info().rss
    while (st := proc.ok("index_status"))["server"]["model_state"] != "unloaded (idle)":
        assert time.monotonic() < deadline, st["server"]
        proc.run(asyncio.sleep(0.2))  # a poll interval, not synchronisation
    rss_unloaded = server.memory_info().rss
    assert rss_unloaded < rss_loaded - 40 * 2**20, (rss_loaded, rss_unloaded)
    # The next search reloads the model itself and ranks exactly as before.
    after = proc.ok("search_code", query)
    assert after["semantic"] and after["results"] == before["results"]
    assert proc.ok("index_status")["server"]["model_state"] == "loaded"


def check_watcher_keeps_index_fresh(proc: McpServerProcess, deadline: float) -> None:
    (proc.root / "net/wombat.py").write_text("def wombat_burrow_depth():\n    return 3\n")
    while True:
        res = proc.ok("search_code", {"query": "wombat_burrow_depth", "k": 1})
        if res["results"] and res["results"][0]["path"] == "net/wombat.py":
            break
        assert time.monotonic() < deadline, proc.ok("index_status")["watcher"]
        proc.run(asyncio.sleep(0.1))  # a poll interval, not synchronisation


# ------------------------------------------------------------ packing (unit)
def _hit(path: str, start: int, end: int, score: float, prefix: str = "line") -> dict[str, Any]:
    return {
        "path": path,
        "start_line": start,
        "end_line": end,
        "score": score,
        "symbol": f"sym{start}",
        "language": "python",
        "snippet": "\n".join(f"{prefix} {n}" for n in range(start, end + 1)),
    }


def test_merge_by_file_joins_overlaps_and_keeps_rank_order():
    hits = [
        _hit("b.py", 10, 14, 0.9),
        _hit("a.py", 1, 3, 0.8),
        _hit("b.py", 13, 16, 0.7),  # overlaps b.py 10-14
        _hit("b.py", 17, 18, 0.6),  # adjacent to 13-16
        _hit("b.py", 40, 41, 0.5),  # separate section
    ]
    merged = merge_by_file(hits)
    assert [m["path"] for m in merged] == ["b.py", "a.py"]
    b = merged[0]
    assert b["ranges"] == [[10, 18], [40, 41]]
    assert (b["start_line"], b["end_line"], b["score"]) == (10, 41, 0.9)
    expected = [f"line {n}" for n in range(10, 19)] + [ELISION, "line 40", "line 41"]
    assert b["snippet"].split("\n") == expected
    assert b["symbol"] == "sym10, sym13, sym17, sym40"


def test_pack_respects_every_budget_and_trims_only_the_last_entry():
    hits = [_hit(f"f{i}.py", 1, 30, 1.0 - i / 10, prefix="x" * 20) for i in range(6)]
    for budget in range(1, 3000, 37):
        packed, omitted = pack(hits, budget)
        assert len(json.dumps(packed, ensure_ascii=False)) <= CHARS_PER_TOKEN * budget
        assert [p["path"] for p in packed] == [f"f{i}.py" for i in range(len(packed))]
        assert all(not p.get("truncated") for p in packed[:-1])
        assert omitted == len(hits) - len(packed)
        for p in packed:
            if p.get("truncated"):
                assert len(p["snippet"].split("\n")) >= 3
    packed, omitted = pack(hits, 100_000)
    assert len(packed) == 6 and omitted == 0 and not any(p.get("truncated") for p in packed)
    assert pack(hits, 1) == ([], 6)
