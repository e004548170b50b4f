"""Watch-mode benchmark: save-to-searchable latency, idle CPU and RSS over edit cycles.

    python benchmarks/watch_bench.py [--files 20000] [--edits 200] [--cycles 1000]
                                     [--idle-seconds 30] [--work DIR] [--out DIR]

On a generated tree (``--files`` small files with one tiny function each, plus 20
ordinary ~40-line modules that get edited) indexed with the REAL bundled model:

1. **latency** — ``--edits`` single-file edits of an ordinary module, one at a time with
   a human-like pause between them; each is timed from just before the write until a
   search through a CodeIndex in the same process (``long_lived``) returns the edited
   text. The search is issued after each update the watcher applies (no busy polling,
   which would steal CPU from the update being measured). Targets: p95 <= 1 s.
2. **idle CPU** — process CPU time (psutil user+system) over ``--idle-seconds`` with the
   watcher idle (after its deferred compaction). Target: < 1 % of one core.
3. **RSS** — ``--cycles`` edit→applied cycles; RSS after each. Growth is the median of
   the last 50 cycles against the median of cycles 100-150 (after warm-up). Target
   <= 2 %.

The tree and its index are kept in ``--work`` (default benchmarks/results/watch-work), so
a second run skips the (long, on 2 cores) initial indexing; the time it took is stored
next to it and reported. Writes ``watch_bench.json`` and ``watch_bench.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, pct, write_report  # noqa: E402
from codeindex.config import load_settings  # noqa: E402
from codeindex.memory import tune_allocator  # noqa: E402
from codeindex.service import CodeIndex  # noqa: E402
from codeindex.watch import Watcher  # noqa: E402

TARGET_P95_S = 1.0
TARGET_IDLE_CPU_PCT = 1.0
TARGET_RSS_GROWTH_PCT = 2.0
HOT_FILES = 20  # the "ordinary source files" that are edited

_VERBS = ["load", "parse", "check", "render", "compute", "fetch", "store", "merge"]
_NOUNS = ["config", "token", "user", "session", "record", "invoice", "packet", "query"]
_TOP = ["src", "lib", "services", "tools", "web", "tests", "pkg", "internal"]


def tiny_file(i: int) -> str:
    verb, noun = _VERBS[i % len(_VERBS)], _NOUNS[(i // len(_VERBS)) % len(_NOUNS)]
    return f"def {verb}_{noun}_{i}(x):\n    return x + {i}\n"


def hot_module(i: int, marker: str) -> str:
    """An ordinary ~40-line module; ``marker`` lands in one function's body."""
    return f'''"""Billing helpers, module {i}."""

import math
from dataclasses import dataclass


@dataclass
class Invoice{i}:
    amount: float
    currency: str = "EUR"


def apply_discount_{i}(invoice, percent):
    """Reduce the amount by a percentage, never below zero."""
    factor = max(0.0, 1.0 - percent / 100.0)
    return Invoice{i}(round(invoice.amount * factor, 2), invoice.currency)


def tax_for_{i}(invoice, rate=0.2):
    """Tax owed on an invoice ({marker})."""
    value = invoice.amount * rate
    if value < 0:
        raise ValueError("negative invoice")
    return math.floor(value * 100) / 100


def total_with_tax_{i}(invoice):
    """Amount plus tax, rounded to cents."""
    return round(invoice.amount + tax_for_{i}(invoice), 2)
'''


def hot_path(i: int) -> str:
    return f"src/billing/hot_{i}.py"


def generate(root: Path, files: int) -> None:
    for i in range(files):
        top = _TOP[i % len(_TOP)]
        d = root / top / f"area{(i // len(_TOP)) % 40}" / f"mod{(i // 320) % 8}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_text(tiny_file(i))
    for i in range(HOT_FILES):
        p = root / hot_path(i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(hot_module(i, "initial"))
    (root / ".gitignore").write_text("node_modules/\n")


def prepare(work: Path, files: int) -> dict[str, Any]:
    """Generate the tree and build its index with the real model (once)."""
    root = work / "tree"
    info_file = work / "index_build.json"
    if info_file.exists():
        info = json.loads(info_file.read_text())
        if info.get("files") == files:
            return info
    if root.exists():
        raise SystemExit(f"{root} exists without {info_file.name}; remove {work} and rerun")
    t0 = time.perf_counter()
    generate(root, files)
    gen_s = time.perf_counter() - t0
    settings = load_settings(root, env={})
    print(f"indexing {files + HOT_FILES} files with {settings.model} …", flush=True)
    t0 = time.perf_counter()
    report = CodeIndex(settings).index()
    info = {
        "files": files,
        "generate_seconds": round(gen_s, 1),
        "index_seconds": round(time.perf_counter() - t0, 1),
        "report": report.as_dict(),
        "model": settings.model,
    }
    info_file.write_text(json.dumps(info, indent=2))
    print(f"initial index: {info['index_seconds']} s", flush=True)
    return info


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ci = CodeIndex(load_settings(root, env={}), long_lived=True)
        self.first_event: dict[str, Any] | None = None  # the startup reconcile's report
        self.watcher = Watcher(self.ci, on_update=self._on_update)
        self.proc = psutil.Process()
        self.edit_no = 0

    def _on_update(self, event: dict[str, Any]) -> None:
        if self.first_event is None:
            self.first_event = event

    def edit(self) -> tuple[str, str]:
        self.edit_no += 1
        i = self.edit_no % HOT_FILES
        marker = f"revision{self.edit_no}zq"
        (self.root / hot_path(i)).write_text(hot_module(i, marker))
        return hot_path(i), marker

    def visible(self, path: str, marker: str) -> bool:
        hits = self.ci.search(marker, k=5).results
        return any(h.path == path and marker in h.snippet for h in hits)

    def edit_until_searchable(self, timeout: float = 60.0) -> float:
        """Seconds from just before the write until a search returns the new text."""
        w = self.watcher
        applied = w.status()["updates_applied"]
        t0 = time.perf_counter()
        path, marker = self.edit()
        deadline = t0 + timeout
        while True:
            if not w.wait_for_update(applied, max(0.0, deadline - time.perf_counter())):
                raise RuntimeError(f"edit {marker} not applied within {timeout}s")
            applied = w.status()["updates_applied"]
            if self.visible(path, marker):
                return time.perf_counter() - t0

    def edit_until_applied(self, timeout: float = 60.0) -> None:
        w = self.watcher
        applied = w.status()["updates_applied"]
        self.edit()
        if not w.wait_for_update(applied, timeout) or not w.wait_idle(timeout):
            raise RuntimeError("edit not applied")

    def rss(self) -> int:
        return self.proc.memory_info().rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between timed edits")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--prepare-only", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tune_allocator()  # as `codeindex watch` does (cli.main), before LanceDB starts threads
    work = args.work or args.out / "watch-work"
    work.mkdir(parents=True, exist_ok=True)
    build = prepare(work, args.files)
    if args.prepare_only:
        return 0
    root = work / "tree"
    for i in range(HOT_FILES):  # a known starting state for the markers
        (root / hot_path(i)).write_text(hot_module(i, "initial"))

    b = Bench(root)
    t0 = time.perf_counter()
    b.watcher.start()
    start_s = time.perf_counter() - t0
    assert b.watcher.wait_idle(3600)
    reconcile_s = time.perf_counter() - t0
    b.ci.search("warm up the model", k=1)  # load the model before timing anything
    print(f"watching: start {start_s:.2f}s, startup reconcile {reconcile_s:.1f}s", flush=True)

    # 1. latency
    latencies = []
    for n in range(args.edits):
        latencies.append(b.edit_until_searchable())
        time.sleep(args.pause)  # pacing between saves (not synchronisation)
        if (n + 1) % 50 == 0:
            print(f"  {n + 1} edits: p50 {pct(latencies, 50):.3f}s", flush=True)
    lat = {
        "edits": len(latencies),
        "p50_s": round(pct(latencies, 50), 3),
        "p95_s": round(pct(latencies, 95), 3),
        "max_s": round(max(latencies), 3),
        "mean_s": round(statistics.mean(latencies), 3),
        "debounce_ms": b.ci.settings.debounce_ms,
        "sample_update": b.watcher.status()["last_update"],  # the last edit's report
    }
    print(f"latency: {lat}", flush=True)

    # 2. idle CPU (after the deferred compaction has run)
    b.watcher.wait_idle(60)
    deadline = time.monotonic() + 60
    while b.watcher.status()["uncompacted_updates"] and time.monotonic() < deadline:
        b.watcher.wait_idle(1)
        time.sleep(0.2)  # waiting for the idle compaction to start and finish
    b.watcher.wait_idle(60)
    c0, w0 = b.proc.cpu_times(), time.perf_counter()
    time.sleep(args.idle_seconds)
    c1, w1 = b.proc.cpu_times(), time.perf_counter()
    cpu_s = (c1.user - c0.user) + (c1.system - c0.system)
    idle = {
        "seconds": round(w1 - w0, 1),
        "cpu_seconds": round(cpu_s, 4),
        "cpu_pct_of_one_core": round(100 * cpu_s / (w1 - w0), 3),
        "threads": b.proc.num_threads(),
    }
    print(f"idle: {idle}", flush=True)

    # 3. RSS over edit cycles
    rss: list[int] = []
    for n in range(args.cycles):
        b.edit_until_applied()
        rss.append(b.rss())
        if (n + 1) % 100 == 0:
            print(f"  {n + 1} cycles: rss {rss[-1] / 2**20:.1f} MiB", flush=True)
    warm = rss[100:150] if len(rss) >= 200 else rss[: max(1, len(rss) // 4)]
    base, last = statistics.median(warm), statistics.median(rss[-50:])
    mem = {
        "cycles": len(rss),
        "rss_after_warmup_mib": round(base / 2**20, 1),
        "rss_final_mib": round(last / 2**20, 1),
        "rss_max_mib": round(max(rss) / 2**20, 1),
        "growth_pct": round(100 * (last - base) / base, 2),
    }
    st = b.watcher.status()
    b.watcher.stop()
    b.ci.close()

    checks = {
        "latency_p95": lat["p95_s"] <= TARGET_P95_S,
        "idle_cpu": idle["cpu_pct_of_one_core"] < TARGET_IDLE_CPU_PCT,
        "rss_growth": mem["growth_pct"] <= TARGET_RSS_GROWTH_PCT,
    }
    data = {
        "machine": machine(),
        "tree": {"files": args.files + HOT_FILES, "tiny_files": args.files},
        "initial_index": build,
        "watch_start_seconds": round(start_s, 3),
        "startup_reconcile_seconds": round(reconcile_s, 1),
        "startup_reconcile": b.first_event,
        "latency": lat,
        "idle": idle,
        "memory": mem,
        "rss_per_cycle_mib": [round(r / 2**20, 1) for r in rss],  # for the memory report
        "watcher_status": st,
        "targets": {
            "latency_p95_s": TARGET_P95_S,
            "idle_cpu_pct": TARGET_IDLE_CPU_PCT,
            "rss_growth_pct": TARGET_RSS_GROWTH_PCT,
        },
        "pass": checks,
    }
    m = data["machine"]
    first = b.first_event or {}
    startup = (
        f"startup reconcile {reconcile_s:.1f} s ({first.get('added', 0)} added, "
        f"{first.get('updated', 0)} updated, {first.get('unchanged', 0)} unchanged; "
        f"{first.get('chunks_embedded', 0)} chunks embedded)"
    )

    def ok(flag: bool) -> str:
        return "PASS" if flag else "FAIL"

    md = f"""# Watch-mode benchmark

{m["date"]} · {m["cores"]} cores · {m["ram_gib"]} GiB RAM · Python {m["python"]} · {m["platform"]}

Command: `{m["command"]}`

Tree: {args.files} tiny files (one function each) + {HOT_FILES} ordinary ~40-line modules,
model `{build.get("model")}`. Initial index (real model): {build["index_seconds"]} s
({build["report"].get("chunks_embedded")} chunks embedded). Watcher start {start_s:.2f} s;
{startup}.

| measure | value | target | |
|---|---|---|---|
| save → searchable p50 ({lat["edits"]} edits) | {lat["p50_s"]:.3f} s | | |
| save → searchable p95 | {lat["p95_s"]:.3f} s | ≤ {TARGET_P95_S} s | {ok(checks["latency_p95"])} |
| save → searchable max | {lat["max_s"]:.3f} s | | |
| idle CPU over {idle["seconds"]} s | {idle["cpu_pct_of_one_core"]:.3f} % of a core \
({idle["cpu_seconds"]} s) | < {TARGET_IDLE_CPU_PCT} % | {ok(checks["idle_cpu"])} |
| RSS after warm-up → after {mem["cycles"]} cycles | {mem["rss_after_warmup_mib"]} → \
{mem["rss_final_mib"]} MiB ({mem["growth_pct"]:+.2f} %) | ≤ {TARGET_RSS_GROWTH_PCT} % \
| {ok(checks["rss_growth"])} |

Latency includes the debounce window ({lat["debounce_ms"]} ms), the update (read, chunk,
embed the changed chunks with the real model, one atomic swap; compaction is deferred to
idle time) and one search. Threads while idle: {idle["threads"]}.
"""
    write_report(args.out, "watch_bench", data, md)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
