"""Warm search latency with the query encoded on one CPU thread vs on all of them.

codeindex encodes small batches (a search query) on one torch thread
(``codeindex.embedding.model.SMALL_BATCH``): a second intra-op thread gains nothing on
a dozen tokens and spin-waits against the search's own full-text thread and anything
else the machine runs. This benchmark measures that choice side by side in one run:
every query of a quality benchmark directory (see ``benchmarks/quality.py``) is searched
once per mode, the order of the modes alternating from query to query, on the indexes
``quality.py`` built (it indexes whatever is missing first).

    python benchmarks/search_threads.py [BENCH_DIR] [--repos a,b] [--rounds 2]

Writes ``benchmarks/results/search_threads.{json,md}``: p50/p95 per mode and their ratio.
Run it on an otherwise idle machine and again under load (e.g. beside a test run): the
gap is widest when the cores are busy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, pct, run_facts, write_report  # noqa: E402
from benchmarks.quality import K, _commit, load_bench  # noqa: E402

MODES = {"one thread": 4, "all threads": 0}  # mode -> SMALL_BATCH


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from codeindex.config import load_settings
    from codeindex.embedding import get_embedder
    from codeindex.embedding import model as model_module
    from codeindex.service import CodeIndex

    bench, work = Path(args.bench).resolve(), Path(args.work).resolve()
    repos = load_bench(bench, work, set(filter(None, args.repos.split(","))))
    if not repos:
        raise SystemExit(f"no repositories found in {bench}")
    times: dict[str, list[float]] = {m: [] for m in MODES}
    embedder = None
    flip = False
    for r in repos:
        # The choice concerns the torch encoder (the numpy one keeps its maths on one
        # thread always), so queries go through torch here.
        settings = load_settings(
            r["root"], index_dir=work / "indexes" / r["name"], env={}, query_encoder="torch"
        )
        embedder = embedder or get_embedder(settings)
        ci = CodeIndex(settings, embedder=embedder)
        ci.index()
        ci.search(r["queries"][0]["query"], K)  # warm caches and the model
        for _ in range(args.rounds):
            for q in r["queries"]:
                order = list(MODES) if flip else list(reversed(MODES))
                flip = not flip
                for mode in order:
                    model_module.SMALL_BATCH = MODES[mode]
                    t0 = time.perf_counter()
                    ci.search(q["query"], K)
                    times[mode].append((time.perf_counter() - t0) * 1000)
        ci.close()
    model_module.SMALL_BATCH = MODES["one thread"]
    summary = {
        m: {"p50_ms": statistics.median(v), "p95_ms": pct(v, 95), "searches": len(v)}
        for m, v in times.items()
    }
    return {
        "machine": machine(),
        "commit": _commit(),
        "torch_threads": torch.get_num_threads(),
        "repos": [r["name"] for r in repos],
        "modes": summary,
        "p50_ratio_all_over_one": summary["all threads"]["p50_ms"]
        / summary["one thread"]["p50_ms"],
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Warm search latency: query encoded on one thread vs all threads",
        "",
        f"{len(data['repos'])} repositories; {run_facts(data)}; "
        f"torch threads {data['torch_threads']}.",
        "",
        "| mode | p50 ms | p95 ms | searches |",
        "|---|---|---|---|",
    ]
    for mode, s in data["modes"].items():
        lines.append(f"| {mode} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['searches']} |")
    lines += ["", f"p50 all threads / one thread: **{data['p50_ratio_all_over_one']:.2f}**", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bench", nargs="?", default=str(here.parent.parent / "shared" / "quality-dev"))
    p.add_argument("--work", default=str(here / "results" / "quality-work"))
    p.add_argument("--out", default=str(here / "results"))
    p.add_argument("--name", default="search_threads")
    p.add_argument("--repos", default="", help="comma-separated subset of repository names")
    p.add_argument("--rounds", type=int, default=1, help="passes over the queries")
    args = p.parse_args(argv)
    data = run(args)
    write_report(Path(args.out), args.name, data, markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
