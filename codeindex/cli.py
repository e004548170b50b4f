"""The command line: parse, call one CodeIndex method, render (text or --json).

Imports stay light at module level so ``codeindex --help`` is instant; torch is only
imported by commands that embed.

Exit codes: 0 success; 1 error (message on stderr); 2 the run finished but some
files failed to read or embed (listed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from codeindex import __version__
from codeindex.errors import CodeIndexError

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common(p: argparse.ArgumentParser, positional_path: bool = False) -> None:
    if positional_path:
        p.add_argument("path", nargs="?", default=".", help="root of the source tree (default .)")
    else:
        p.add_argument("--path", default=".", help="indexed root (default .)")
    p.add_argument(
        "--index-dir", help="index directory (default <root>/.codeindex; env CODEINDEX_DIR)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codeindex",
        description="Local semantic code search: index a source tree, then search it by "
        "meaning or by symbol, in bounded memory.",
    )
    parser.add_argument("--version", action="version", version=f"codeindex {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index of a tree")
    _common(p, positional_path=True)
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail instead of waiting when another process is writing the index",
    )
    p.add_argument(
        "--no-embed",
        action="store_true",
        help="only the full-text side now; vectors fill in on the next run",
    )

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query", help="natural language or a symbol name")
    _common(p)
    p.add_argument("-k", type=int, default=10, help="results per page (1-100, default 10)")
    p.add_argument("--lang", default="", help="only this language (e.g. python)")
    p.add_argument("--glob", default="", help="only paths matching this glob (e.g. 'src/**/*.py')")
    p.add_argument("--cursor", default="", help="next_cursor of a previous page")

    p = sub.add_parser("list-files", help="page through indexed (or skipped) files")
    _common(p)
    p.add_argument("--page-size", type=int, default=100, help="files per page (1-500)")
    p.add_argument("--cursor", default="", help="next_cursor of a previous page")
    p.add_argument("--glob", default="", help="only paths matching this glob")
    p.add_argument("--lang", default="", help="only this language")
    p.add_argument("--skipped", action="store_true", help="list skipped files with reasons")

    p = sub.add_parser("status", help="state, counts, coverage, memory telemetry")
    _common(p)
    p.add_argument(
        "--no-stale-check",
        action="store_true",
        help="skip the stat walk that detects changes since the last run",
    )

    p = sub.add_parser("watch", help="keep the index fresh while files change")
    _common(p, positional_path=True)
    p.add_argument(
        "--debounce-ms",
        type=int,
        help="quiet time before a change is indexed (default: setting debounce_ms, 300)",
    )
    p.add_argument(
        "--polling",
        action="store_true",
        help="poll the tree instead of native file events (network drives, containers)",
    )

    p = sub.add_parser("mcp", help="serve MCP (stdio by default) for AI assistants")
    p.add_argument("--root", default=".", help="root to index and serve (default .)")
    p.add_argument("--index-dir", help="index directory")
    p.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    p.add_argument("--no-watch", action="store_true", help="do not keep the index fresh")
    p.add_argument("--log-file", help="also log to this file")
    return parser


def _settings(args: argparse.Namespace, root: str, **overrides: Any):
    from codeindex.config import load_settings

    return load_settings(root, index_dir=getattr(args, "index_dir", None), **overrides)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _err(msg: str) -> None:
    sys.stderr.write(f"codeindex: error: {msg}\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_OK
    from codeindex.memory import tune_allocator

    tune_allocator()  # before LanceDB/torch start their threads
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        handler = {
            "index": cmd_index,
            "search": cmd_search,
            "list-files": cmd_list_files,
            "status": cmd_status,
            "watch": cmd_watch,
            "mcp": cmd_mcp,
        }[args.command]
        return handler(args)
    except CodeIndexError as exc:
        _err(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


# ---------------------------------------------------------------- index
def cmd_index(args: argparse.Namespace) -> int:
    from codeindex.service import CodeIndex

    settings = _settings(args, args.path)
    ci = CodeIndex(settings)
    stop = threading.Event()

    def on_sigint(signum, frame):  # first Ctrl-C: finish the current batch cleanly
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write("\ncodeindex: stopping after the current batch (Ctrl-C again to abort)\n")

    old = signal.signal(signal.SIGINT, on_sigint)
    progress = None if args.json or not sys.stderr.isatty() else _RichProgress()
    try:
        if progress:
            progress.start()
        report = ci.index(
            progress=progress,
            stop=stop,
            wait=not args.no_wait,
            on_wait=lambda m: sys.stderr.write(f"codeindex: {m}\n"),
            embed=not args.no_embed,
        )
    finally:
        if progress:
            progress.stop()
        signal.signal(signal.SIGINT, old)
    data = report.as_dict()
    if args.json:
        _print_json(data)
    else:
        skipped = sum(report.skipped.values())
        print(
            f"indexed {settings.root}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.deleted} deleted, {skipped} skipped; "
            f"{report.chunks_embedded} chunks embedded, {report.chunks_reused} reused "
            f"in {report.seconds:.1f}s (peak RSS {report.peak_rss_bytes / 2**20:.0f} MiB)"
        )
        for f in report.failed[:20]:
            print(f"  failed: {f['path']}: {f['reason']} {f.get('detail', '')}", file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if report.failed else EXIT_OK


class _RichProgress:
    """Live progress on stderr: files scanned, chunks embedded, rate, ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = None
        self._t0 = time.monotonic()
        self._done = 0

    def start(self) -> None:
        self._p.start()

    def stop(self) -> None:
        self._p.stop()

    def phase(self, name: str, total: int | None) -> None:
        if self._task is not None:
            self._p.update(self._task, visible=True)
        label = {"scanning": "files", "embedding": "chunks"}.get(name, name)
        self._task = self._p.add_task(f"{name} ({label})", total=total, rate="")
        self._t0 = time.monotonic()
        self._done = 0

    def advance(self, n: int = 1, **info: Any) -> None:
        if self._task is None:
            return
        self._done += n
        rate = self._done / max(1e-6, time.monotonic() - self._t0)
        self._p.update(self._task, advance=n, rate=f"{rate:.1f}/s")


# ---------------------------------------------------------------- search
def cmd_search(args: argparse.Namespace) -> int:
    from codeindex.service import CodeIndex

    ci = CodeIndex(_settings(args, args.path))
    res = ci.search(args.query, args.k, language=args.lang, glob=args.glob, cursor=args.cursor)
    if args.json:
        _print_json(res.as_dict())
        return EXIT_OK
    if not res.results:
        print("no results")
    for i, hit in enumerate(res.results, 1):
        sym = f"  {hit.symbol}" if hit.symbol else ""
        print(f"{i:>2}. {hit.path}:{hit.start_line}-{hit.end_line}{sym}  (score {hit.score:.3f})")
        # Six lines from where the query's words are densest, numbered like grep -n.
        skip = hit.match_line - hit.start_line
        for n, line in enumerate(hit.snippet.split("\n")[skip : skip + 6]):
            print(f"      {hit.start_line + skip + n:>5}: {line[:160]}")
    tail = f"coverage {res.coverage:.0%}"
    if res.next_cursor:
        tail += f"; more: --cursor {res.next_cursor}"
    print(tail, file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- list-files
def cmd_list_files(args: argparse.Namespace) -> int:
    from codeindex.service import CodeIndex

    ci = CodeIndex(_settings(args, args.path))
    res = ci.list_files(
        page_size=args.page_size,
        cursor=args.cursor,
        glob=args.glob,
        language=args.lang,
        skipped=args.skipped,
    )
    if args.json:
        _print_json(res.as_dict())
        return EXIT_OK
    for f in res.files:
        if args.skipped:
            print(f"{f.path}\t{f.reason}\t{f.detail}")
        else:
            print(f"{f.path}\t{f.language or '-'}\t{f.size}\t{f.chunks} chunks")
    if res.next_cursor:
        print(f"more: --cursor {res.next_cursor}", file=sys.stderr)
    if res.index_changed:
        print("note: the index changed since this listing began", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    from codeindex.service import CodeIndex

    ci = CodeIndex(_settings(args, args.path))
    st = ci.status(check_stale=not args.no_stale_check)
    if args.json:
        _print_json(st.as_dict())
        return EXIT_OK
    mem = st.memory
    mib = 2**20
    print(f"root:      {st.root}")
    print(f"index:     {st.index_dir}  ({st.disk_bytes / mib:.1f} MiB)")
    print(
        f"state:     {st.state.value}"
        + (f" — {st.incompatible_reason}" if st.incompatible_reason else "")
    )
    print(f"model:     {st.model} ({st.dimension or '?'} dims)")
    print(f"files:     {st.files}  chunks: {st.chunks}  coverage: {st.coverage:.1%}")
    if st.skipped:
        print("skipped:   " + ", ".join(f"{k} {v}" for k, v in sorted(st.skipped.items())))
    print(f"last run:  {st.last_indexed_at or 'never'}")
    print(
        f"memory:    rss {mem['rss_bytes'] / mib:.0f} MiB,"
        f" peak {mem['peak_rss_bytes'] / mib:.0f} MiB,"
        f" available {mem['available_bytes'] / mib:.0f} MiB,"
        f" limit {mem['limit_bytes'] / mib:.0f} MiB ({mem['limit_source']})"
    )
    print(f"watcher:   {st.watcher}")
    return EXIT_OK


# ---------------------------------------------------------------- watch
def cmd_watch(args: argparse.Namespace) -> int:
    """``codeindex watch [PATH]``: reconcile, then follow the tree until Ctrl-C.

    The first Ctrl-C (or SIGTERM) stops cleanly after applying pending changes (exit 0);
    a second one abandons them (exit 130; the next start's reconcile redoes them).
    ``--json`` prints one JSON line per applied update on stdout; otherwise one line of
    text. Messages go to stderr.
    """
    try:
        from codeindex.live import LiveIndex
        from codeindex.watch import Watcher  # noqa: F401 - only: is watch mode in this build
    except ImportError:
        _err("watch mode is not available in this build")
        return EXIT_ERROR
    from codeindex import runstate

    settings = _settings(args, args.path, debounce_ms=args.debounce_ms)

    def on_update(event: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.write(_watch_line(event, as_json=args.json) + "\n")
            sys.stdout.flush()

    other = runstate.watcher_state(settings.index_dir)
    if other.get("running") and other.get("pid") != os.getpid():
        sys.stderr.write(
            f"codeindex: note: another watcher (pid {other.get('pid')}) is already "
            "keeping this index fresh; both will apply updates.\n"
        )
    # The runtime the MCP server uses too: one index, the watcher, and idle unload (between
    # bursts of edits the model's memory goes back; the next update that has chunks to
    # embed reloads it). No warm-up: an update loads the model when it needs it.
    live = LiveIndex(
        settings, watch=True, warm_up=False, on_update=on_update, use_polling=args.polling
    )
    stop = threading.Event()
    interrupts = [0]

    def on_signal(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        if interrupts[0] == 1:
            stop.set()
            sys.stderr.write("\ncodeindex: stopping after pending changes (Ctrl-C to abandon)\n")
        else:
            live.abort()

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        live.start(wait=True)
        st = live.watcher_status()
        extra = f"; polling {', '.join(st['polling_fallback'])}" if st["polling_fallback"] else ""
        sys.stderr.write(
            f"codeindex: watching {settings.root} ({st['mode']}{extra}); Ctrl-C to stop\n"
        )
        while not stop.wait(3600):
            pass
        live.close(flush=True)
    finally:
        live.close()  # again is safe; drops pending changes if the loop did not end
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return EXIT_INTERRUPTED if interrupts[0] > 1 else EXIT_OK


def _watch_line(event: dict[str, Any], as_json: bool) -> str:
    """One applied update (``Watcher`` ``on_update`` event) as one line of output: the
    event as JSON, or a sentence naming the paths (three at most) and the timings."""
    if as_json:
        return json.dumps(event, default=str)
    if event["event"] == "reconcile":
        return (
            f"{event['at']} reconciled ({event['reason']}): {event['added']} added, "
            f"{event['updated']} updated, {event['deleted']} deleted; "
            f"{event['chunks_embedded']} chunks embedded, {event['chunks_reused']} reused "
            f"in {event['seconds']:.2f}s"
        )
    shown = ", ".join(event["paths"][:3])
    more = event["path_count"] - min(3, event["path_count"])
    return (
        f"{event['at']} {shown}{f' (+{more} more)' if more else ''}: "
        f"{event['chunks_embedded']} chunks embedded, {event['chunks_reused']} reused "
        f"in {event['seconds']:.2f}s, lag {event['lag_seconds']:.2f}s"
    )


# ---------------------------------------------------------------- mcp
def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from codeindex.mcp.server import run_server
    except ImportError as exc:
        _err(f"the MCP server is not available: {exc}")
        return EXIT_ERROR
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_server(args)


if __name__ == "__main__":
    raise SystemExit(main())
