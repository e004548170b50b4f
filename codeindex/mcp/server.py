"""``codeindex mcp``: the MCP tools over one LiveIndex (stdio or streamable HTTP).

Contracts:

* stdout carries only MCP protocol: the SDK's stdio transport moves fd 1 to stderr
  for everything else, and logs go to stderr (plus ``--log-file``).
* ``initialize`` is answered at once: the lifespan only starts the LiveIndex
  (``codeindex.live``), which opens the index, warms the model up and catches the
  index up in the background. Tools answer from whatever is indexed meanwhile, say so,
  and report ``coverage``; until the model is loaded, searches are full-text only
  (``semantic: false``) instead of waiting for torch.
* One LiveIndex per process: one CodeIndex, one model and one LanceDB connection
  shared by every tool, at most one background index job (the catch-up or a
  ``reindex``) and the watcher. Tool bodies are plain ``def`` functions run on a
  fixed pool of ``TOOL_THREADS`` threads (see ServerState); LiveIndex and CodeIndex
  are thread-safe. No tool keeps per-request state.
* Each tool parses, makes one LiveIndex or CodeIndex call and renders. Problems the
  model can fix (``CodeIndexError``) come back as ``ToolError`` (``is_error`` results
  with an actionable message); anything else is logged as a crash and the server
  stays up.
"""

import argparse
import asyncio
import contextlib
import functools
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from pydantic.fields import FieldInfo

from codeindex import __version__
from codeindex.config import Settings, load_settings
from codeindex.errors import CodeIndexError, IndexMissingError
from codeindex.live import LiveIndex
from codeindex.mcp.packing import check_max_tokens, pack
from codeindex.types import FilePage, SearchPage

log = logging.getLogger(__name__)

REINDEX_WAIT_SECONDS = 10.0  # reindex answers within this; the run continues in the background
PROGRESS_POLL_SECONDS = 0.2  # how often a waiting reindex call looks for progress to report
TOOL_THREADS = 8  # the fixed tool pool (see ServerState)

INSTRUCTIONS = """\
Semantic + symbol search over one local source tree ({root}).
Start with search_code (natural language or an identifier); read exact current lines
with get_code; page through files with list_files; find_similar finds code like a
given range. index_status tells whether the index is complete (coverage 1.0 = every
chunk embedded) and shows a running index's progress. {freshness}
Cursors are opaque: pass next_cursor back unchanged with the same other arguments."""
FRESH_WATCHING = "The index follows file changes by itself (index_status shows the watcher)."
FRESH_MANUAL = "Call reindex with the paths you edited to make changes searchable."

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


# --------------------------------------------------------------------------- state
class ServerState:
    """What the lifespan yields: the LiveIndex every tool calls, and the fixed pool of
    ``TOOL_THREADS`` threads the tools run on (all started up front: the SDK's worker
    threads come and go, and a server's thread count should not wander)."""

    def __init__(self, settings: Settings, *, watch: bool = True, transport: str = "stdio"):
        self.live = LiveIndex(settings, watch=watch)
        self.transport = transport
        self._pool = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="codeindex-tool")
        # Start every pool thread now: the executor otherwise adds one whenever a call
        # arrives a moment before the previous one's thread is idle again.
        ready = threading.Barrier(TOOL_THREADS)
        for _ in range(TOOL_THREADS):
            self._pool.submit(ready.wait, 10)

    async def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``fn(**kwargs)`` on the tool pool and await its result."""
        return await asyncio.wrap_future(self._pool.submit(fn, **kwargs))

    def close(self) -> None:
        """Drop tool calls not yet started, then close the LiveIndex (bounded waits)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.live.close()

    def server_info(self) -> dict[str, Any]:
        """The ``server`` entry of index_status: this process and its LiveIndex."""
        return {
            "pid": os.getpid(),
            "version": __version__,
            "transport": self.transport,
            **self.live.info(),
        }

    def pending_note(self) -> str:
        """Why results may be incomplete right now ("" when they are not)."""
        if self.live.indexing:
            return (
                "The index is still being built or updated; results cover what is indexed "
                "so far (see coverage; index_status shows progress)."
            )
        return ""


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _tool_errors(state: ServerState | None = None) -> Iterator[None]:
    """CodeIndexError → ToolError: the model reads the message and can act on it.

    With ``state``: any other failure while the index is being written (e.g. a
    rebuild dropping the tables a read was using) becomes a "retry shortly" ToolError
    too; the traceback still goes to the log. Otherwise it stays a crash.
    """
    try:
        yield
    except CodeIndexError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:
        if state is None or not state.live.indexing:
            raise
        log.warning("a read failed while the index was being written", exc_info=True)
        raise ToolError(
            "the index is being rebuilt or updated and could not be read just now; "
            "retry in a few seconds (index_status shows progress)."
        ) from exc


def _state(ctx: Context) -> ServerState:
    return ctx.request_context.lifespan_context


def _on_tool_pool(fn: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    """Make a plain ``def fn(ctx, ...)`` tool run on the server's fixed tool pool.

    The SDK reads the signature (and so the input schema) through ``__wrapped__``.
    """

    @functools.wraps(fn)
    async def tool(ctx: Context, **kwargs: Any) -> dict[str, Any]:
        return await _state(ctx).call(fn, ctx=ctx, **kwargs)

    return tool


def _with_limits(tool: Callable[..., Any], settings: Settings) -> Callable[..., Any]:
    """``tool`` with its parameter descriptions formatted with ``s=settings``.

    A description such as ``"Hits per page, 1-{s.max_k}."`` then states the limit this
    server's CodeIndex enforces: limits are declared once, in Settings, and the input
    schema shown to the model cannot drift from them. Descriptions of tools passed
    here are format strings (a literal brace is written twice).
    """
    sig = inspect.signature(tool, eval_str=True)  # follows __wrapped__ to the def
    params = []
    for param in sig.parameters.values():
        if get_origin(param.annotation) is Annotated:
            base, *meta = get_args(param.annotation)
            meta = [
                FieldInfo.merge_field_infos(m, description=m.description.format(s=settings))
                if isinstance(m, FieldInfo) and m.description
                else m
                for m in meta
            ]
            param = param.replace(annotation=Annotated[(base, *meta)])
        params.append(param)

    @functools.wraps(tool)
    async def described(**kwargs: Any) -> Any:
        return await tool(**kwargs)

    # The SDK builds the input schema from inspect.signature(), which reads this first.
    described.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return described


# --------------------------------------------------------------------------- tools
@_on_tool_pool
def search_code(
    ctx: Context,
    query: Annotated[
        str,
        Field(
            description="What to find: natural language or an identifier "
            "(≤{s.max_query_chars} chars)."
        ),
    ],
    k: Annotated[int, Field(description="Hits per page, 1-{s.max_k}.")] = 10,
    path_glob: Annotated[
        str, Field(description="Only paths matching this glob, e.g. 'src/**/*.py'.")
    ] = "",
    language: Annotated[str, Field(description="Only this language, e.g. 'python'.")] = "",
    cursor: Annotated[
        str, Field(description="next_cursor from the previous page; same other arguments.")
    ] = "",
    max_tokens: Annotated[
        int,
        Field(
            description="0 = off. Otherwise pack the best hits into about this many tokens: "
            "hits from one file merged, the last one trimmed (truncated=true)."
        ),
    ] = 0,
) -> dict[str, Any]:
    """Search the indexed code by meaning (vector) and by symbol/text (full-text).

    Returns hits (path, start_line, end_line, score, symbol, language, snippet),
    next_cursor (null on the last page), coverage (share of chunks with vectors;
    below 1.0 while indexing) and semantic (false: full-text hits only, e.g. in the
    first seconds while the model loads). With no index yet it returns no hits and
    a note.
    """
    state = _state(ctx)
    notes: list[str] = []
    with _tool_errors(state):
        check_max_tokens(max_tokens)
        try:
            page = state.live.search(query, k, language=language, glob=path_glob, cursor=cursor)
        except IndexMissingError as exc:  # and nothing is building it: say how to
            page = SearchPage.empty(query)
            notes.append(f"There is no index yet; call reindex to build it. ({exc})")
    res = page.as_dict()
    res["semantic"] = page.semantic
    if max_tokens:
        res["results"], res["omitted"] = pack(res["results"], max_tokens)
        res["max_tokens"] = max_tokens
    notes.append(state.pending_note())
    if res["coverage"] and not res["semantic"]:
        notes.append(
            f"The embedding model is not ready ({state.live.model_state}): these hits come from "
            "full-text search only; repeat the search shortly for semantic ranking."
        )
    if any(notes):
        res["note"] = " ".join(n for n in notes if n)
    return res


@_on_tool_pool
def list_files(
    ctx: Context,
    cursor: Annotated[
        str, Field(description="next_cursor from the previous page; same other arguments.")
    ] = "",
    page_size: Annotated[int, Field(description="Files per page, 1-{s.max_page_size}.")] = 100,
    path_glob: Annotated[str, Field(description="Only paths matching this glob.")] = "",
    language: Annotated[str, Field(description="Only this language, e.g. 'go'.")] = "",
    include_skipped: Annotated[
        bool,
        Field(description="List skipped files (binary, too large, ...) with reasons instead."),
    ] = False,
) -> dict[str, Any]:
    """One page of indexed files (or, with include_skipped, skipped files and why).

    Paging with next_cursor until it is null visits every file of one index snapshot
    exactly once; index_changed=true says the index has moved on since the first
    page. total is null when index_changed is true.
    """
    state = _state(ctx)
    with _tool_errors(state):
        try:
            return state.live.index.list_files(
                page_size=page_size,
                cursor=cursor,
                glob=path_glob,
                language=language,
                skipped=include_skipped,
            ).as_dict()
        except IndexMissingError as exc:  # raised after page_size was validated
            out = FilePage(files=(), next_cursor=None, total=0, index_changed=False).as_dict()
            out["note"] = state.pending_note() or f"There is no index yet; call reindex. ({exc})"
            return out


@_on_tool_pool
def get_code(
    ctx: Context,
    path: Annotated[str, Field(description="File path relative to the indexed root.")],
    start_line: Annotated[int, Field(description="First line, 1-based.")],
    end_line: Annotated[
        int, Field(description="Last line, inclusive (≤{s.max_code_lines} lines).")
    ],
) -> dict[str, Any]:
    """The exact current text of lines start_line..end_line of a file in the root.

    Paths outside the root (.., absolute, symlinks leading out), ignored and
    deny-listed files (secrets) are refused.
    """
    state = _state(ctx)
    with _tool_errors(state):
        return state.live.index.get_code(path, start_line, end_line)


@_on_tool_pool
def find_similar(
    ctx: Context,
    path: Annotated[str, Field(description="File path relative to the indexed root.")],
    start_line: Annotated[int, Field(description="First line of the range, 1-based.")],
    end_line: Annotated[int, Field(description="Last line of the range, inclusive.")],
    k: Annotated[int, Field(description="Number of hits, 1-{s.max_k}.")] = 10,
) -> dict[str, Any]:
    """Code that resembles the given range (the range itself is excluded)."""
    state = _state(ctx)
    with _tool_errors(state):
        return state.live.index.find_similar(path, start_line, end_line, k)


@_on_tool_pool
def index_status(ctx: Context) -> dict[str, Any]:
    """State (missing/indexing/stale/ready/incompatible), file and chunk counts, coverage,
    progress of a running index (phase, done/total, rate, ETA), last update, watcher,
    model, disk use and memory telemetry (rss, peak, available, limit)."""
    state = _state(ctx)
    with _tool_errors(state):
        # No tree walk per call: the watcher (or reindex) keeps the index fresh.
        out = state.live.index.status(check_stale=False).as_dict()
    out["server"] = state.server_info()
    return out


async def reindex(
    ctx: Context,
    paths: Annotated[
        list[str],
        Field(description="Files to update, relative to the root; empty = the whole root."),
    ] = [],  # noqa: B006 - pydantic copies defaults; a list keeps the schema union-free
) -> dict[str, Any]:
    """Bring the index up to date for the given files (or the whole root).

    Sends progress notifications while it waits, and answers within about 10 s:
    state "done" with the run's report, or "running" when the run continues in the
    background (poll index_status). Searches keep working meanwhile. If a run is
    already going, returns state "already running" with its progress instead.
    """
    state = _state(ctx)
    with _tool_errors():
        job, started = state.live.reindex(paths)
    if not started:
        return {"state": "already running", "job": job.snapshot()}
    deadline = time.monotonic() + REINDEX_WAIT_SECONDS
    sent: tuple[float, float | None, str] | None = None
    while True:
        update = job.progress()
        if sent is None or update[0] > sent[0]:  # MCP: progress must increase
            await ctx.report_progress(*update)
            sent = update
        if not job.running or time.monotonic() >= deadline:
            break
        # A poll (not an event) because the run outlives this request when it is long.
        await anyio.sleep(PROGRESS_POLL_SECONDS)
    if job.running:
        return {
            "state": "running",
            "note": "the run continues in the background; poll index_status for progress.",
            "job": job.snapshot(),
        }
    if job.error is not None:
        raise ToolError(f"reindex failed: {job.error}") from None
    return {"state": "done", "job": job.snapshot()}


# --------------------------------------------------------------------------- server
def build_server(settings: Settings, *, watch: bool = True, transport: str = "stdio") -> MCPServer:
    """An MCPServer whose lifespan owns one ServerState (and so one LiveIndex)."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[ServerState]:
        state = ServerState(settings, watch=watch, transport=transport)
        state.live.start()
        log.info("codeindex MCP server for %s (%s)", settings.root, transport)
        try:
            yield state
        finally:
            await anyio.to_thread.run_sync(state.close)

    server: MCPServer = MCPServer(
        "codeindex",
        title="codeindex — local semantic code search",
        instructions=INSTRUCTIONS.format(
            root=settings.root, freshness=FRESH_WATCHING if watch else FRESH_MANUAL
        ),
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )
    for fn, title in (
        (search_code, "Search code"),
        (list_files, "List indexed files"),
        (get_code, "Read lines of a file"),
        (find_similar, "Find similar code"),
        (index_status, "Index status"),
    ):
        server.add_tool(
            _with_limits(fn, settings),
            title=title,
            annotations=READ_ONLY.model_copy(update={"title": title}),
        )
    server.add_tool(
        reindex,
        title="Update the index",
        annotations=ToolAnnotations(
            title="Update the index",
            read_only_hint=False,  # it writes the index
            destructive_hint=False,  # it only brings the index in line with the files
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    return server


def _configure_logging(log_file: str | None) -> None:
    """Our lifecycle logs at INFO to stderr (set up by the CLI) and to --log-file."""
    logging.getLogger("codeindex").setLevel(
        min(logging.INFO, logging.getLogger().getEffectiveLevel())
    )
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    if log_file:
        fh = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)


def run_server(args: argparse.Namespace) -> int:
    """Entry point of ``codeindex mcp``: serve until stdin closes (or Ctrl-C for HTTP)."""
    _configure_logging(args.log_file)
    settings = load_settings(args.root, index_dir=args.index_dir)
    transport = "streamable-http" if args.http else "stdio"
    server = build_server(settings, watch=not args.no_watch, transport=transport)
    if args.http:
        # Loopback only: the index exposes source code, so never another interface.
        log.warning("serving MCP on http://127.0.0.1:%d/mcp", args.port)
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        server.run("stdio")
    return 0
