"""Cold CLI search: the query embedded by the numpy encoder vs by the torch one.

Every ``codeindex search`` from the shell is a fresh process that embeds one query.
With ``query_encoder = "auto"`` (the default) that process uses the numpy encoder
(``codeindex/embedding/numpy_bert.py``) and never imports torch; ``"torch"`` forces the
torch encoder the index was built with. This benchmark runs both side by side:

1. builds (or reuses) a real-model index of a generated tree (``benchmarks/gen.py``);
2. spawns ``python -m codeindex search QUERY --path TREE --json`` ``--runs`` times per
   mode, the modes interleaved and their order alternating run by run, each mode seeing
   the same queries; per mode: p50/p95 wall time, CPU seconds (user + sys of the child,
   from ``os.wait4``) and peak RSS (``ru_maxrss``), and whether both modes returned the
   same hits;
3. measures each encoder warm, in a fresh process of its own, on one thread (numpy's
   BLAS via the encoder's own limit, ``torch.set_num_threads(1)``): import + load time,
   the RSS the loaded encoder adds, and per-query encode time.

    python benchmarks/cold_search.py [--files 300] [--runs 20] [--work DIR]

Writes ``benchmarks/results/cold_search.{json,md}``. The machine's load matters (other
jobs share the cores): compare the modes within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, pct, run_cli, write_report  # noqa: E402
from benchmarks.gen import generate_tree  # noqa: E402

MODES = ("numpy", "torch")  # values of CODEINDEX_QUERY_ENCODER
QUERIES = [
    "where is the config validated",
    "retry the request with a limit",
    "parse token items",
    "render the invoice report",
    "cache user sessions",
    "how are packets decoded?",
    "merge two ledgers",
    "schedule a refresh of the graph",
    "compute the total of a matrix",
    "store the image buffer",
    "fetch records up to a limit",
    "encode the response",
    "search the query index",
    "load the session for a user",
    "validate_token",
    "decode_packet",
    "what happens when the limit is reached",
    "sum of items",
    "math sqrt of the total",
    "generated module for benchmarks",
]


def _env(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEINDEX_")}
    return {**env, "CODEINDEX_QUERY_ENCODER": mode, "HF_HUB_OFFLINE": "1"}


def ensure_index(work: Path, files: int) -> tuple[Path, dict[str, Any]]:
    """The generated tree under ``work``, indexed with the real model (built once)."""
    root = work / "tree"
    if not (root / ".codeindex").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        generate_tree(root, files)
        res, _, wall = run_cli(["index", str(root), "--json"], env=_env("auto"), sample=False)
        if res.returncode != 0:
            raise SystemExit(f"indexing failed: {res.stderr[-2000:]}")
        print(f"indexed {files} files in {wall:.0f} s", file=sys.stderr)
    res, _, _ = run_cli(["status", "--path", str(root), "--json"], env=_env("auto"), sample=False)
    status = json.loads(res.stdout)
    if status.get("coverage") != 1.0:
        raise SystemExit(f"the index at {root} is not fully embedded: {status}")
    return root, {"files": status["files"], "chunks": status["chunks"]}


def search_once(root: Path, query: str, mode: str) -> dict[str, Any]:
    """One ``codeindex search`` in a fresh process: wall, CPU and peak RSS of the child."""
    with tempfile.TemporaryFile("w+") as out:
        # Output to a file, not a pipe: wait4 blocks, and a full pipe would block the child.
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeindex", "search", query, "--path", str(root), "--json"],
            env=_env(mode),
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"search {query!r} ({mode}) exited {proc.returncode}")
        out.seek(0)
        hits = [(h["path"], h["start_line"]) for h in json.load(out)["results"]]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "hits": hits,
    }


def cold(root: Path, runs: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    same = 0
    for i in range(runs):
        query = QUERIES[i % len(QUERIES)]
        order = MODES if i % 2 == 0 else tuple(reversed(MODES))
        got = {mode: search_once(root, query, mode) for mode in order}
        same += got["numpy"]["hits"] == got["torch"]["hits"]
        for mode in MODES:
            samples[mode].append(got[mode])
        print(
            f"run {i + 1}/{runs}: " + ", ".join(f"{m} {got[m]['wall_s']:.2f} s" for m in MODES),
            file=sys.stderr,
        )
    summary = {}
    for mode, rows in samples.items():
        summary[mode] = {
            f"{key}_{q}": pct([r[key] for r in rows], q)
            for key in ("wall_s", "cpu_s", "peak_rss_mib")
            for q in (50, 95)
        } | {"runs": len(rows)}
    return {"modes": summary, "same_hits": same, "runs": runs}


# Each encoder warm in a fresh process of its own, on one thread: import + load time,
# the RSS the loaded encoder adds, per-query encode time.
_WARM_CHILD = r"""
import json, sys, time
import psutil
proc = psutil.Process()
mode, repeats = sys.argv[1], int(sys.argv[2])
queries = json.loads(sys.argv[3])
from codeindex.embedding import bundled_model_path
path = bundled_model_path()
rss0 = proc.memory_info().rss
t0 = time.perf_counter()
if mode == "numpy":
    from codeindex.embedding.numpy_bert import NumpyBertEncoder
    enc = NumpyBertEncoder(path, threads=1)
else:
    import torch
    torch.set_num_threads(1)
    from codeindex.embedding.bert import BertEncoder
    enc = BertEncoder(path)
load_s = time.perf_counter() - t0
enc.encode(queries[:1])
rss_loaded = proc.memory_info().rss
times = []
for _ in range(repeats):
    for q in queries:
        t = time.perf_counter()
        enc.encode([q])
        times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"load_s": load_s, "rss_added_mib": (rss_loaded - rss0) / 2**20,
                  "weights_mib": getattr(enc, "nbytes", 0) / 2**20, "times_ms": times,
                  "torch_imported": "torch" in sys.modules}))
"""


def warm(repeats: int) -> dict[str, Any]:
    out = {}
    for mode in MODES:
        res = subprocess.run(
            [sys.executable, "-c", _WARM_CHILD, mode, str(repeats), json.dumps(QUERIES)],
            capture_output=True,
            text=True,
            env=_env(mode),
            timeout=600,
        )
        if res.returncode != 0:
            raise SystemExit(f"warm {mode} failed: {res.stderr[-2000:]}")
        data = json.loads(res.stdout.strip().splitlines()[-1])
        times = data.pop("times_ms")
        out[mode] = data | {
            "encode_p50_ms": statistics.median(times),
            "encode_p95_ms": pct(times, 95),
            "encodes": len(times),
        }
    return out


def markdown(data: dict[str, Any]) -> str:
    m, idx, c, w = data["machine"], data["index"], data["cold"], data["warm"]
    lines = [
        "# Cold `codeindex search`: numpy query encoder vs torch",
        "",
        f"{idx['files']} files, {idx['chunks']} chunks (generated tree, bundled model); "
        f"{m['cores']} cores, {m['ram_gib']} GiB; load average at start "
        f"{data['load_average']}; {m['date']}.",
        "",
        f"Each mode: {c['runs']} fresh `python -m codeindex search QUERY --json` processes, "
        "the modes interleaved. CPU = user + sys of the child; RSS = its peak (`ru_maxrss`).",
        "",
        "| query encoder | wall p50 s | wall p95 s | CPU p50 s | CPU p95 s | peak RSS p50 MiB |",
        "|---|---|---|---|---|---|",
    ]
    for mode, s in c["modes"].items():
        lines.append(
            f"| {mode} | {s['wall_s_50']:.2f} | {s['wall_s_95']:.2f} | {s['cpu_s_50']:.2f} "
            f"| {s['cpu_s_95']:.2f} | {s['peak_rss_mib_50']:.0f} |"
        )
    np_, th = c["modes"]["numpy"], c["modes"]["torch"]
    lines += [
        "",
        f"torch / numpy: wall p50 **{th['wall_s_50'] / np_['wall_s_50']:.2f}×**, CPU p50 "
        f"**{th['cpu_s_50'] / np_['cpu_s_50']:.2f}×**, peak RSS "
        f"**{th['peak_rss_mib_50'] - np_['peak_rss_mib_50']:+.0f} MiB** for torch. "
        f"Same hits in {c['same_hits']}/{c['runs']} runs.",
        "",
        "Warm, in a process of its own, one thread:",
        "",
        "| encoder | import + load s | RSS added MiB | encode p50 ms | encode p95 ms |",
        "|---|---|---|---|---|",
    ]
    for mode, s in w.items():
        lines.append(
            f"| {mode} | {s['load_s']:.2f} | {s['rss_added_mib']:.0f} | "
            f"{s['encode_p50_ms']:.1f} | {s['encode_p95_ms']:.1f} |"
        )
    lines += [
        "",
        f"The numpy encoder holds {w['numpy']['weights_mib']:.0f} MiB of fp32 weights; "
        f"torch imported by the numpy process: {w['numpy']['torch_imported']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--files", type=int, default=300, help="files in the generated tree")
    p.add_argument("--runs", type=int, default=20, help="searches per mode")
    p.add_argument("--repeats", type=int, default=5, help="warm passes over the queries")
    p.add_argument("--work", default=str(here / "results" / "cold-search-work"))
    p.add_argument("--out", default=str(here / "results"))
    args = p.parse_args(argv)
    load = [round(x, 2) for x in os.getloadavg()]
    root, index = ensure_index(Path(args.work), args.files)
    data = {
        "machine": machine(),
        "load_average": load,
        "index": index,
        "cold": cold(root, args.runs),
        "warm": warm(args.repeats),
    }
    write_report(Path(args.out), "cold_search", data, markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
