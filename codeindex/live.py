"""LiveIndex: one CodeIndex kept live for the long-running modes (``codeindex mcp``,
``codeindex watch``).

Contracts:

* **One index, one model.** One ``CodeIndex(settings, long_lived=True)`` per LiveIndex:
  one LanceDB connection and the process's one embedder, run on one embedding thread
  (``EmbedThread``: torch keeps a thread team per thread that runs the model) and given
  back after ``idle_unload_minutes`` without use (``IdleUnloader``; the next embed
  reloads it). With ``warm_up`` the model is loaded at start, so no search waits for
  it; until then :meth:`search` answers from the full-text side only.
* **Startup.** :meth:`start` imports the storage layer, opens the index, starts the
  warm-up and catches the index up: the watcher's startup reconcile when watching
  (a full ``CodeIndex.index()`` queued after its watches exist, so nothing changed
  meanwhile is missed), one catch-up job otherwise. By default all of it runs in a
  background thread, so a front end can answer at once; :attr:`index` waits (bounded)
  for the open.
* **One background job at a time** (:class:`IndexJob`: the catch-up or a
  :meth:`reindex`); asking for another while one runs returns the running one. The
  watcher's updates serialise with it inside CodeIndex (the writer lock).
* **Limits** of these runs are enforced here: ``max_reindex_paths`` (paths accepted by
  :meth:`reindex`) and ``max_reported_failures`` (failed files listed in a job's report).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codeindex import discovery
from codeindex.config import Settings
from codeindex.errors import CodeIndexError, IncompatibleIndexError, IndexMissingError
from codeindex.types import IndexReport, SearchPage, utc_iso

if TYPE_CHECKING:  # importing these at run time would import lancedb (seconds)
    from codeindex.embedding import EmbedThread, IdleUnloader
    from codeindex.service import CodeIndex
    from codeindex.watch import Watcher

log = logging.getLogger(__name__)

SHUTDOWN_JOIN_SECONDS = 10.0  # how long close() waits for background threads to stop
OPEN_WAIT_SECONDS = 60.0  # how long a caller of .index waits for startup to open it


# --------------------------------------------------------------------------- jobs
class IndexJob:
    """One background ``CodeIndex.index()`` run; also its Progress sink.

    ``progress_value`` only ever grows (MCP requires monotonic progress): it counts
    every item advanced across phases, while ``phase``/``done``/``total`` describe the
    current phase (``stage``). Its report lists at most ``max_failures`` failed files.
    """

    def __init__(self, kind: str, paths: list[str] | None, max_failures: int) -> None:
        self.kind = kind
        self.paths = paths
        self.max_failures = max_failures
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

    def finish(self, report: IndexReport | None = None, error: str | None = None) -> None:
        """Record the run's outcome (its report, or why it failed) and mark it finished.

        The report is ``IndexReport.as_dict()`` listing at most ``max_failures`` failed
        files; ``failed_count`` is the exact count."""
        if report is not None:
            data = report.as_dict()
            failed = data.get("failed") or []
            data["failed_count"] = len(failed)
            data["failed"] = failed[: self.max_failures]
            self.report = data
        self.error = error
        self.finished_at = time.time()
        self.finished.set()

    # -- views --
    @property
    def running(self) -> bool:
        """True until :meth:`finish` ran."""
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
        """A JSON-safe view: kind, paths (a count, or "all"), state (running, done or
        failed), phase, done, total, started_at, finished_at; report and error once
        there are any."""
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


def check_reindex_paths(settings: Settings, paths: list[str]) -> list[str]:
    """``paths`` as root-relative POSIX file paths, duplicates dropped, so that a bad
    one is refused (CodeIndexError) before a run starts, not found failing later.
    Refuses more than ``max_reindex_paths`` (setting), empty paths, directories, and
    whatever ``discovery.resolve_inside_root`` refuses (``..``, absolute, escapes)."""
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
        resolved = discovery.resolve_inside_root(settings, raw)
        if resolved.is_dir():
            raise CodeIndexError(
                f"{raw!r} is a directory; pass file paths, or no paths to update the whole root."
            )
        out.append(os.path.normpath(raw).replace(os.sep, "/"))
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- live
class LiveIndex:
    """One CodeIndex, its model's lifecycle, one background job and (``watch``) the
    watcher, for a long-running front end (see the module docstring).

    ``on_update`` and ``use_polling`` go to the watcher (``codeindex.watch.Watcher``).
    Methods are safe to call from several threads. Use: ``start()``, then
    :attr:`index` / :meth:`search` / :meth:`reindex` ..., and ``close()`` at the end.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool = True,
        warm_up: bool = True,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        use_polling: bool = False,
    ) -> None:
        self.settings = settings
        self.watch = watch
        self.started = time.time()
        self._warm = warm_up
        self._on_update = on_update
        self._use_polling = use_polling
        self._model_state = "not loaded"
        self._index: CodeIndex | None = None
        self._embedder: EmbedThread | None = None
        self._unloader: IdleUnloader | None = None
        self._opened = threading.Event()
        self._started_up = threading.Event()  # set once the catch-up is underway or done
        self._open_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _job, _threads, _watcher
        self._job: IndexJob | None = None
        self._threads: list[threading.Thread] = []
        self._watcher: Watcher | None = None
        self._watcher_note = "starting" if watch else "disabled (--no-watch)"

    @property
    def index(self) -> CodeIndex:
        """The shared CodeIndex; waits (bounded) while startup is still opening it."""
        if not self._opened.wait(OPEN_WAIT_SECONDS):
            raise CodeIndexError("the server is still starting up; retry in a few seconds.")
        if self._index is None:
            raise CodeIndexError(f"the index could not be opened: {self._open_error}")
        return self._index

    # -- lifecycle --
    def start(self, *, wait: bool = False) -> None:
        """Open the index, start the model's warm-up and catch the index up.

        ``wait=False`` (the MCP server) returns at once and does it in a background
        thread; what fails is reported (``info()["open_error"]``, the watcher status's
        note), and a watcher that cannot start is replaced by one catch-up job.
        ``wait=True`` (the watch command) does it in the calling thread and returns once
        the watcher runs (its reconcile is queued) or, without watching, once the
        catch-up job has finished; it raises when the index cannot be opened or the
        watcher cannot start. The warm-up always runs in a thread of its own.
        """
        if wait:
            self._startup(strict=True)
            return
        with self._lock:
            self._spawn(self._startup, "codeindex-startup")

    def close(self, *, flush: bool = False) -> None:
        """Stop the watcher, the background job and every thread started here (bounded
        waits), the idle unloader and the embedding thread; drop the connection.

        ``flush=True`` lets the watcher apply its pending changes first (waiting for the
        writer lock if another process holds it); ``flush=False`` drops them, and the
        next start's reconcile picks them up. Safe to call again.
        """
        self._stop.set()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            try:
                watcher.stop(flush=flush)
            except Exception:
                log.exception("stopping the watcher failed")
        deadline = time.monotonic() + SHUTDOWN_JOIN_SECONDS
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        if self._unloader is not None:
            self._unloader.stop()
        if self._embedder is not None:
            self._embedder.close()
        if self._index is not None:
            self._index.close()

    def abort(self) -> None:
        """Make a close in progress (or the next one) drop the watcher's pending changes
        and interrupt the update or job in flight; safe to call from a signal handler."""
        self._stop.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.abort()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        # Callers hold self._lock. Daemon threads: a run that does not notice the stop
        # request must not keep the process alive after its front end has gone.
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _startup(self, strict: bool = False) -> None:
        try:
            self._open()
        finally:
            self._opened.set()
        try:
            if self._index is None:
                if strict:
                    raise CodeIndexError(f"the index could not be opened: {self._open_error}")
                return
            if self._warm:
                with self._lock:
                    if not self._stop.is_set():
                        self._spawn(self._warm_up, "codeindex-warmup")
            self._catch_up(strict)
        finally:
            self._started_up.set()

    def _open(self) -> None:
        try:
            from codeindex.embedding import EmbedThread, IdleUnloader, get_embedder
            from codeindex.service import CodeIndex  # imports lancedb: seconds, not at import

            shared = get_embedder(self.settings)
            self._embedder = EmbedThread(shared)
            # Idle unload: the model's memory goes back after idle_unload_minutes; the
            # next embed reloads it (about a second: torch stays imported).
            self._unloader = IdleUnloader(shared, self.settings.idle_unload_minutes).start()
            index = CodeIndex(self.settings, embedder=self._embedder, long_lived=True)
            # The watcher seam: status() reports this process's watcher, not watcher.json.
            index.watcher_status = self.watcher_status
            self._index = index
            # Open the store now (when an index exists), so the first search is quick.
            index.compatibility()
        except Exception as exc:  # reported; the catch-up may still fix a broken index
            self._open_error = str(exc)
            log.warning("opening the index failed: %s", exc)

    def _warm_up(self) -> None:
        # Load the model now, so searches turn semantic without any call paying for it.
        self._model_state = "loading"
        try:
            self.index.embedder.embed(["warm up"])
            self._model_state = "loaded"
        except Exception as exc:  # searches stay full-text and say why
            self._model_state = f"failed to load ({exc})"
            log.exception("loading the model failed")

    def _catch_up(self, strict: bool) -> None:
        if self.watch and self._start_watcher(strict):
            return  # the watcher's startup reconcile (now pending) is the catch-up
        with self._lock:
            if self._stop.is_set() or (self._job is not None and self._job.running):
                return  # shutting down, or a reindex already covers it
            job = self._job = IndexJob("catch-up", None, self.settings.max_reported_failures)
        self._started_up.set()  # the job is visible from here on
        self._run_job(job)

    def _start_watcher(self, strict: bool) -> bool:
        """Start a Watcher on the index. False (with a note in the watcher status) when
        this build has none or it fails to start; ``strict`` raises instead."""
        try:
            from codeindex.watch import Watcher

            if self._stop.is_set():
                return False
            # Not under self._lock: scheduling watches can take a while on a big tree,
            # and reindex / close must not wait for it.
            watcher = Watcher(self.index, on_update=self._on_update, use_polling=self._use_polling)
            watcher.start()
        except Exception as exc:
            if strict:
                raise
            missing = isinstance(exc, ImportError)
            why = f"unavailable in this build ({exc})" if missing else f"failed to start ({exc})"
            self._watcher_note = f"{why}; call reindex after edits"
            log.warning("not watching for changes: %s", exc, exc_info=not missing)
            return False
        with self._lock:
            keep = not self._stop.is_set()
            if keep:
                self._watcher = watcher
        if not keep:  # close() ran meanwhile and did not see this watcher
            watcher.stop(flush=False)
            return True
        self.index.watcher_status = self.watcher_status  # Watcher.start() sets its own
        log.info("watching %s for changes", self.settings.root)
        return True

    # -- model --
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

    # -- background runs --
    @property
    def indexing(self) -> bool:
        """True while the index is being caught up, rebuilt or updated in this process:
        startup has not reached the catch-up yet, the background job runs, the watcher
        has a reconcile or update pending/running, or any other in-process run."""
        if not self._started_up.is_set():
            return True
        job, index, watcher = self._job, self._index, self._watcher
        if job is not None and job.running:
            return True
        if index is not None and index.running:
            return True
        if watcher is not None:
            st = watcher.status()
            return bool(st.get("reconcile_pending") or st.get("updating"))
        return False

    @property
    def job(self) -> IndexJob | None:
        """The running background job, else the last one (None before the first)."""
        return self._job

    def reindex(self, paths: list[str] | None = None) -> tuple[IndexJob, bool]:
        """Start a background run over ``paths`` (checked by :func:`check_reindex_paths`;
        None or empty: the whole root) unless a job runs: (the job, whether it started).
        A bad path raises CodeIndexError and starts nothing."""
        rels = check_reindex_paths(self.settings, paths) if paths else None
        with self._lock:
            if self._job is not None and self._job.running:
                return self._job, False
            job = self._job = IndexJob("reindex", rels, self.settings.max_reported_failures)
            self._spawn(self._run_job, "codeindex-reindex", job)
            return job, True

    def _run_job(self, job: IndexJob) -> None:
        try:
            report = self.index.index(
                job.paths, progress=job, stop=self._stop, on_wait=job.waiting_for_lock
            )
            job.finish(report)
            log.info("%s run finished: %s", job.kind, job.report)
        except CodeIndexError as exc:
            job.finish(error=str(exc))
            log.warning("%s run failed: %s", job.kind, exc)
        except Exception as exc:
            job.finish(error=f"internal error ({type(exc).__name__}); see the server log")
            log.exception("%s run crashed", job.kind)
        finally:
            if job.running:  # a BaseException on its way out: still end the job
                job.finish(error="interrupted")

    # -- reads --
    def search(
        self, query: str, k: int = 10, *, language: str = "", glob: str = "", cursor: str = ""
    ) -> SearchPage:
        """``CodeIndex.search`` as the live modes run it: full-text only until the
        warm-up has loaded the model (rather than making a search wait for it), and "no
        results yet" while this process's catch-up, job or watcher builds the index."""
        index = self.index
        args = dict(language=language, glob=glob, cursor=cursor, semantic=self.model_ready)
        try:
            return index.search(query, k, **args)
        except (IndexMissingError, IncompatibleIndexError):
            # Asked only here, not on every search: ``indexing`` reads the watcher's status.
            if not self.indexing:
                raise
            return index.search(query, k, **args, run_pending=True)

    def watcher_status(self) -> dict[str, Any]:
        """The watcher's ``status()``; while there is none, ``running: false`` and a
        note saying why (starting, disabled, unavailable, failed to start)."""
        watcher = self._watcher
        if watcher is not None:
            return watcher.status()
        return {"running": False, "note": self._watcher_note}

    def info(self) -> dict[str, Any]:
        """JSON-safe: uptime_seconds, model_state, open_error (why the index could not
        be opened, or None) and background_job (the job's snapshot, or None)."""
        job = self._job
        return {
            "uptime_seconds": round(time.time() - self.started, 1),
            "model_state": self.model_state,
            "open_error": self._open_error,
            "background_job": job.snapshot() if job is not None else None,
        }
