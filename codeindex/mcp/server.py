"""``codeindex mcp``: the MCP tools over one shared CodeIndex (stdio or streamable HTTP).

Contracts:

* stdout carries only MCP protocol: the SDK's stdio transport moves fd 1 to stderr
  for everything else, and logs go to stderr (plus ``--log-file``).
* ``initialize`` is answered at once: the lifespan only starts a background thread
  that imports the storage layer, opens the index, loads the model (in one more
  thread) and catches the index up (the watcher's startup reconcile, or one
  ``CodeIndex.index()`` job). Tools answer from whatever is indexed meanwhile, say so,
  and report ``coverage``; until the model is loaded, searches are full-text only
  (``semantic: false``) instead of waiting for torch.
* One ``CodeIndex(settings, long_lived=True)`` per process: one model and one LanceDB
  connection shared by every tool. Tool bodies are plain ``def`` functions run on a
  fixed pool of ``TOOL_THREADS`` threads (see there why not the SDK's); CodeIndex is
  thread-safe. No tool keeps per-request state.
* Each tool parses, makes one CodeIndex call and renders. Problems the model can fix
  (``CodeIndexError``) come back as ``ToolError`` (``is_error`` results with an
  actionable message); anything else is logged as a crash and the server stays up.
* This server runs at most one background index job at a time (the catch-up or a
  ``reindex``); an in-process watcher's updates serialise with it inside CodeIndex.
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
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from pydantic.fields import FieldInfo

from codeindex import __version__, discovery
from codeindex.config import Settings, load_settings
from codeindex.errors import CodeIndexError, IndexMissingError
from codeindex.mcp.packing import check_max_tokens, pack
from codeindex.types import IndexReport, SearchPage, utc_iso

if TYPE_CHECKING:  # importing these at run time would import lancedb (seconds)
    from codeindex.embedding import EmbedThread, IdleUnloader
    from codeindex.service import CodeIndex

log = logging.getLogger(__name__)

REINDEX_WAIT_SECONDS = 10.0  # reindex answers within this; the run continues in the background
PROGRESS_POLL_SECONDS = 0.2  # how often a waiting reindex call looks for progress to report
SHUTDOWN_JOIN_SECONDS = 10.0  # how long shutdown waits for a background run to stop
OPEN_WAIT_SECONDS = 60.0  # how long a tool call waits for the index to be opened at startup
# Tools run on this many long-lived threads (all started up front) rather than the
# SDK's worker threads, which come and go: a server's thread count should not wander.
TOOL_THREADS = 8

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


# --------------------------------------------------------------------------- jobs
class IndexJob:
    """One background ``CodeIndex.index()`` run; also its Progress sink.

    ``progress_value`` only ever grows (MCP requires monotonic progress): it counts
    every item advanced across phases, while ``phase``/``done``/``total`` describe the
    current phase (``stage``).
    """

    def __init__(self, kind: str, paths: list[str] | None) -> None:
        self.kind = kind
        self.paths = paths
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.stage = "waiting"
        self.done = 0
        self.total: int | None = None
        self.progress_value = 0
        self._before_phase = 0
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self.finished = threading.Event()
        self._lock = threading.Lock()

    # -- Progress protocol (called from the index thread) --
    def phase(self, name: str, total: int | None) -> None:  # noqa: D102 - Progress protocol
        with self._lock:
            self._before_phase = self.progress_value
            self.stage, self.total, self.done = name, total, 0

    def advance(self, n: int = 1, **info: Any) -> None:  # noqa: D102 - Progress protocol
        with self._lock:
            self.done += n
            self.progress_value += n

    def waiting_for_lock(self, message: str) -> None:
        """on_wait hook: another process holds the writer lock."""
        with self._lock:
            self.stage = "waiting for another writer"
        log.info("%s run: %s", self.kind, message)

    # -- views --
    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def progress(self) -> tuple[float, float | None, str]:
        """(progress, total, message) for an MCP progress notification.

        Finishing counts as one more step, so the last notification (100%) is still
        strictly greater than the one before it.
        """
        with self._lock:
            if not self.running:
                value = float(self.progress_value + 1)
                return value, value, "failed" if self.error else "done"
            total = None if self.total is None else self._before_phase + self.total + 1
            of = f"/{self.total}" if self.total is not None else ""
            return float(self.progress_value), total, f"{self.stage}: {self.done}{of}"

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe view for tool results."""
        with self._lock:
            out: dict[str, Any] = {
                "kind": self.kind,
                "paths": len(self.paths) if self.paths is not None else "all",
                "state": "running" if self.running else ("failed" if self.error else "done"),
                "phase": self.stage,
                "done": self.done,
                "total": self.total,
                "started_at": utc_iso(self.started_at),
                "finished_at": utc_iso(self.finished_at),
            }
        if self.report is not None:
            out["report"] = self.report
        if self.error is not None:
            out["error"] = self.error
        return out


def _report(report: IndexReport, max_failures: int) -> dict[str, Any]:
    """An IndexReport as a dict listing at most ``max_failures`` failed files
    (the ``max_reported_failures`` setting); ``failed_count`` is the exact count."""
    data = report.as_dict()
    failed = data.get("failed") or []
    data["failed_count"] = len(failed)
    data["failed"] = failed[:max_failures]
    return data


# --------------------------------------------------------------------------- state
class ServerState:
    """What the lifespan yields: the shared CodeIndex, its background runs, the watcher.

    Startup happens in a background thread, so ``initialize`` is answered at once:
    import the storage layer and open the index (tools wait for this, up to
    ``OPEN_WAIT_SECONDS``), then load the model (another thread) and catch the index
    up. With watching on and ``codeindex.watch.Watcher`` available, the watcher's own
    startup reconcile (a full ``CodeIndex.index()`` queued after its watches exist, so
    nothing changed meanwhile is missed) is the catch-up; otherwise this server runs
    one catch-up job.
    """

    def __init__(self, settings: Settings, *, watch: bool = True, transport: str = "stdio"):
        self.settings = settings
        self.watch = watch
        self.transport = transport
        self.started = time.time()
        self._model_state = "not loaded"
        self._index: CodeIndex | None = None
        self._opened = threading.Event()
        self._started_up = threading.Event()  # set once the catch-up is underway or done
        self._open_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _job, _threads, watcher
        self._job: IndexJob | None = None
        self._threads: list[threading.Thread] = []
        self.watcher: Any = None
        self._watcher_note = "starting" if watch else "disabled (--no-watch)"
        self._pool = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="codeindex-tool")
        # Start every pool thread now: the executor otherwise adds one whenever a call
        # arrives a moment before the previous one's thread is idle again.
        ready = threading.Barrier(TOOL_THREADS)
        for _ in range(TOOL_THREADS):
            self._pool.submit(ready.wait, 10)
        self._embedder: EmbedThread | None = None
        self._unloader: IdleUnloader | None = None

    async def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``fn(**kwargs)`` on the tool pool and await its result."""
        return await asyncio.wrap_future(self._pool.submit(fn, **kwargs))

    @property
    def index(self) -> "CodeIndex":
        """The shared CodeIndex; waits (bounded) while startup is still opening it."""
        if not self._opened.wait(OPEN_WAIT_SECONDS):
            raise CodeIndexError("the server is still starting up; retry in a few seconds.")
        if self._index is None:
            raise CodeIndexError(f"the index could not be opened: {self._open_error}")
        return self._index

    # -- lifecycle --
    def start(self) -> None:
        """Start opening the index, loading the model and catching up; returns at once."""
        with self._lock:
            self._spawn(self._startup, "codeindex-startup")

    def close(self) -> None:
        """Stop the watcher and background runs (bounded waits); drop the connection."""
        self._stop.set()
        with self._lock:
            watcher, self.watcher = self.watcher, None
        if watcher is not None:
            try:
                # flush=False: pending changes are picked up by the next start's
                # reconcile; flushing could wait on another process's writer lock.
                watcher.stop(flush=False)
            except Exception:
                log.exception("stopping the watcher failed")
        deadline = time.monotonic() + SHUTDOWN_JOIN_SECONDS
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._unloader is not None:
            self._unloader.stop()
        if self._embedder is not None:
            self._embedder.close()
        if self._index is not None:
            self._index.close()

    def _spawn(self, target: Any, name: str, *args: Any) -> threading.Thread:
        # Callers hold self._lock. Daemon threads: a run that does not notice the stop
        # request must not keep the process alive after the transport closed.
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return t

    def _startup(self) -> None:
        try:
            from codeindex.embedding import EmbedThread, IdleUnloader, get_embedder
            from codeindex.service import CodeIndex  # imports lancedb: seconds, not here

            shared = get_embedder(self.settings)
            self._embedder = EmbedThread(shared)
            # Idle unload: the model's memory goes back after idle_unload_minutes; the
            # next search reloads it (about a second: torch stays imported).
            self._unloader = IdleUnloader(shared, self.settings.idle_unload_minutes).start()
            index = CodeIndex(self.settings, embedder=self._embedder, long_lived=True)
            # The watcher seam: status() reports this server's watcher, not watcher.json.
            index.watcher_status = self._watcher_status
            self._index = index
            # Open the store now (when an index exists), so the first search is quick.
            index.compatibility()
        except Exception as exc:  # tools report it; the catch-up below may still fix it
            self._open_error = str(exc)
            log.warning("opening the index failed: %s", exc)
        finally:
            self._opened.set()
        try:
            if self._index is not None:
                with self._lock:
                    if not self._stop.is_set():
                        self._spawn(self._warm_up, "codeindex-warmup")
                self._catch_up()
        finally:
            self._started_up.set()

    def _warm_up(self) -> None:
        # Load the model now, so searches turn semantic without any call paying for it.
        self._model_state = "loading"
        try:
            self.index.embedder.embed(["warm up"])
            self._model_state = "loaded"
        except Exception as exc:  # searches stay full-text and say why
            self._model_state = f"failed to load ({exc})"
            log.exception("loading the model failed")

    @property
    def model_ready(self) -> bool:
        """True once the warm-up has loaded the model (searches then embed queries).

        Stays True after an idle unload: the next search reloads the model itself.
        """
        return self._model_state == "loaded"

    @property
    def model_state(self) -> str:
        """ "not loaded", "loading", "loaded", "unloaded (idle)" or "failed to load (...)"."""
        if self._model_state == "loaded" and not getattr(self._embedder, "loaded", True):
            return "unloaded (idle)"
        return self._model_state

    def _catch_up(self) -> None:
        if self.watch and self._start_watcher():
            return  # the watcher's startup reconcile (now pending) is the catch-up
        with self._lock:
            if self._stop.is_set() or (self._job is not None and self._job.running):
                return  # shutting down, or a reindex already covers it
            job = self._job = IndexJob("catch-up", None)
        self._started_up.set()  # the job is visible from here on
        self._run_job(job)

    # -- background index runs --
    @property
    def indexing(self) -> bool:
        """True while the index is being caught up, rebuilt or updated in this process:
        startup has not reached the catch-up yet, this server's job runs, the watcher
        has a reconcile or update pending/running, or any other in-process run."""
        if not self._started_up.is_set():
            return True
        job, index, watcher = self._job, self._index, self.watcher
        if job is not None and job.running:
            return True
        if index is not None and index.current_run is not None:
            return True
        if watcher is not None:
            st = watcher.status()
            return bool(st.get("reconcile_pending") or st.get("updating"))
        return False

    def start_reindex(self, paths: list[str] | None) -> tuple[IndexJob, bool]:
        """Start a reindex unless one of this server's jobs runs: (job, started)."""
        with self._lock:
            if self._job is not None and self._job.running:
                return self._job, False
            job = self._job = IndexJob("reindex", paths)
            self._spawn(self._run_job, "codeindex-reindex", job)
            return job, True

    def _run_job(self, job: IndexJob) -> None:
        try:
            report = self.index.index(
                job.paths, progress=job, stop=self._stop, on_wait=job.waiting_for_lock
            )
            job.report = _report(report, self.settings.max_reported_failures)
            log.info("%s run finished: %s", job.kind, job.report)
        except CodeIndexError as exc:
            job.error = str(exc)
            log.warning("%s run failed: %s", job.kind, exc)
        except Exception as exc:
            job.error = f"internal error ({type(exc).__name__}); see the server log"
            log.exception("%s run crashed", job.kind)
        finally:
            job.finished_at = time.time()
            job.finished.set()

    # -- the watcher seam --
    def _start_watcher(self) -> bool:
        """Start codeindex.watch.Watcher if this build has one. False (with a note in
        the watcher status) when it is missing or fails to start."""
        try:
            from codeindex.watch import Watcher
        except ImportError as exc:
            self._watcher_note = f"unavailable in this build ({exc}); call reindex after edits"
            log.warning("not watching for changes: %s", exc)
            return False
        if self._stop.is_set():
            return False
        try:
            # Not under self._lock: scheduling watches can take a while on a big tree,
            # and reindex / close must not wait for it.
            watcher = Watcher(self.index)
            watcher.start()
        except Exception as exc:
            self._watcher_note = f"failed to start ({exc}); call reindex after edits"
            log.exception("starting the watcher failed")
            return False
        with self._lock:
            keep = not self._stop.is_set()
            if keep:
                self.watcher = watcher
        if not keep:  # close() ran meanwhile and did not see this watcher
            watcher.stop(flush=False)
            return True
        self.index.watcher_status = self._watcher_status  # Watcher.start() sets its own
        log.info("watching %s for changes", self.settings.root)
        return True

    def _watcher_status(self) -> dict[str, Any]:
        watcher = self.watcher
        if watcher is not None:
            return watcher.status()
        return {"running": False, "note": self._watcher_note}

    # -- views --
    def server_info(self) -> dict[str, Any]:
        job = self._job
        return {
            "pid": os.getpid(),
            "version": __version__,
            "transport": self.transport,
            "uptime_seconds": round(time.time() - self.started, 1),
            "model_state": self.model_state,
            "open_error": self._open_error,
            "background_job": job.snapshot() if job is not None else None,
        }

    def pending_note(self) -> str:
        """Why results may be incomplete right now ("" when they are not)."""
        if self.indexing:
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
        if state is None or not state.indexing:
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


def _check_reindex_paths(settings: Settings, paths: list[str]) -> list[str]:
    """Root-relative file paths, validated before the background run starts so a bad
    one is a tool error now, not a failed run later. More than ``max_reindex_paths``
    (setting) are refused."""
    if len(paths) > settings.max_reindex_paths:
        raise CodeIndexError(
            f"{len(paths)} paths is more than {settings.max_reindex_paths}; "
            "call reindex with no paths to update the whole root."
        )
    out: list[str] = []
    for raw in paths:
        if not raw.strip() or raw.strip() in (".", "./"):
            raise CodeIndexError(
                "an empty path was given; pass file paths relative to the root, "
                "or no paths to update the whole root."
            )
        resolved = discovery.resolve_inside_root(settings, raw)  # refuses .., /abs, escapes
        if resolved.is_dir():
            raise CodeIndexError(
                f"{raw!r} is a directory; pass file paths, or no paths to update the whole root."
            )
        out.append(os.path.normpath(raw).replace(os.sep, "/"))
    return list(dict.fromkeys(out))


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
            # Until the model is loaded, answer from the full-text side at once rather
            # than making the first call wait for torch (several seconds).
            page = state.index.search(
                query,
                k,
                language=language,
                glob=path_glob,
                cursor=cursor,
                semantic=state.model_ready,
                run_pending=state.indexing,
            )
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
            f"The embedding model is not ready ({state.model_state}): these hits come from "
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
            return state.index.list_files(
                page_size=page_size,
                cursor=cursor,
                glob=path_glob,
                language=language,
                skipped=include_skipped,
            ).as_dict()
        except IndexMissingError as exc:  # raised after page_size was validated
            return {
                "files": [],
                "next_cursor": None,
                "total": 0,
                "index_changed": False,
                "note": state.pending_note() or f"There is no index yet; call reindex. ({exc})",
            }


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
        return state.index.get_code(path, start_line, end_line)


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
        return state.index.find_similar(path, start_line, end_line, k)


@_on_tool_pool
def index_status(ctx: Context) -> dict[str, Any]:
    """State (missing/indexing/stale/ready/incompatible), file and chunk counts, coverage,
    progress of a running index (phase, done/total, rate, ETA), last update, watcher,
    model, disk use and memory telemetry (rss, peak, available, limit)."""
    state = _state(ctx)
    with _tool_errors(state):
        # No tree walk per call: the watcher (or reindex) keeps the index fresh.
        out = state.index.status(check_stale=False).as_dict()
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
        rels = _check_reindex_paths(state.settings, paths) if paths else None
    job, started = state.start_reindex(rels)
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
    """An MCPServer whose lifespan owns one ServerState (and so one CodeIndex)."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[ServerState]:
        state = ServerState(settings, watch=watch, transport=transport)
        state.start()
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
