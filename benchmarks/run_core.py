"""Core benchmark (issue: "The core"): throughput, memory, re-index, search latency.

    python benchmarks/run_core.py [--quick] [--out benchmarks/results]

Writes core.json and core.md. Every indexing run happens in a fresh subprocess so
that its peak RSS is its own. Targets: pipeline ≥ 0.9× bare encode; peak RSS ≤ 1.0 GB
with the real model; RSS ratio 200k/20k files (fake embedder) ≤ 1.2; no-change
re-index of 2,000 files ≤ 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RssSampler, machine, pct, run_cli, write_report  # noqa: E402
from benchmarks.gen import big_text_file, generate_tree, single_line_file  # noqa: E402

FAKE = {"CODEINDEX_MODEL": "fake-hash-384"}

_THROUGHPUT_CHILD = r"""
import json, sys, time, shutil
from pathlib import Path
from codeindex.memory import tune_allocator
tune_allocator()
from codeindex.config import load_settings
from codeindex.service import CodeIndex
from codeindex.embedding import get_embedder
import torch

root = Path(sys.argv[1])
settings = load_settings(root, env={}, version_retention_seconds=0)
emb = get_embedder(settings)
emb.embed(["warm up the model"])  # load outside the timings
# Chunk texts once (no embedding) to feed the bare encode the same inputs.
CodeIndex(settings.replace(index_dir=root / ".texts"), embedder=emb).index(embed=False)
from codeindex.storage import Store
store = Store(root / ".texts", 384)
texts = []
for path in store.iter_file_paths():  # through the store's API: file by file
    texts += [row["text"] for row in store.chunks_of(path)]
assert len(texts) == store.count_chunks(), "chunks_of cut a file short"
texts = sorted(set(texts))
builtin = emb._load()  # codeindex's encoder, which the pipeline runs
from sentence_transformers import SentenceTransformer
library = SentenceTransformer(str(emb.path), device="cpu")  # the reference model.encode
out = {"chunks": len(texts), "backend": emb.backend, "bare": [], "bare_builtin": [],
       "pipeline": []}
for rep in range(2):
    t0 = time.perf_counter()
    with torch.inference_mode():
        library.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    out["bare"].append(len(texts) / (time.perf_counter() - t0))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            builtin.encode(texts[i : i + 32])
    out["bare_builtin"].append(len(texts) / (time.perf_counter() - t0))
    idx = root / f".pipe{rep}"
    shutil.rmtree(idx, ignore_errors=True)
    t0 = time.perf_counter()
    r = CodeIndex(settings.replace(index_dir=idx), embedder=emb).index()
    out["pipeline"].append(r.chunks_embedded / (time.perf_counter() - t0))
    out["embedded"] = r.chunks_embedded
print(json.dumps(out))
"""

_SEARCH_CHILD = r"""
import json, sys, time
from codeindex.config import load_settings
from codeindex.service import CodeIndex
ci = CodeIndex(load_settings(sys.argv[1], env={}), long_lived=True)
queries = ["load the config", "validate a token", "render the report", "parse packets",
           "compute matrix totals", "fetch user sessions", "retry requests", "merge ledgers",
           "encode images", "schedule refresh", "search index", "decode response buffer"]
ci.search(queries[0], k=10)  # warm: model load
lat = []
for i in range(120):
    t0 = time.perf_counter()
    ci.search(queries[i % len(queries)] + f" {i % 7}", k=10)
    lat.append(time.perf_counter() - t0)
print(json.dumps(lat))
"""


def throughput(work: Path, files: int) -> dict:
    root = work / "throughput"
    generate_tree(root, files, seed=11)
    res = subprocess.run(
        [sys.executable, "-c", _THROUGHPUT_CHILD, str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(res.stdout.strip().splitlines()[-1])
    bare, pipe = statistics.median(data["bare"]), statistics.median(data["pipeline"])
    return {
        "files": files,
        "chunks": data["chunks"],
        "encoder": data["backend"],
        "bare_chunks_per_s": round(bare, 2),
        "bare_builtin_chunks_per_s": round(statistics.median(data["bare_builtin"]), 2),
        "pipeline_chunks_per_s": round(pipe, 2),
        "ratio": round(pipe / bare, 3),
        "runs": data,
    }


def time_to_first_result(root: Path, env: dict) -> tuple[float, subprocess.Popen]:
    """Start `codeindex index` and poll search (full text answers first) until a hit."""
    from codeindex.config import load_settings
    from codeindex.embedding import FakeEmbedder
    from codeindex.errors import CodeIndexError
    from codeindex.service import CodeIndex

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeindex", "index", str(root), "--json"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    settings = load_settings(root, env={})
    # The query side needs no model while coverage is 0; FakeEmbedder never runs then.
    ci = CodeIndex(settings, embedder=FakeEmbedder(), long_lived=True)
    while time.perf_counter() - t0 < 600:
        try:
            res = ci.search("compute the matrix totals", k=5)
            if res.results and res.coverage == 0.0:
                return time.perf_counter() - t0, proc
            if res.results:
                return time.perf_counter() - t0, proc
        except CodeIndexError:
            pass  # index not created yet
        except Exception:  # tables mid-creation
            pass
        if proc.poll() is not None:
            break
    return float("nan"), proc


def memory_real(
    work: Path, files: int, big_mb: list[float], line_mb: float, big_seconds: float
) -> dict:
    root = work / "tree2k"
    generate_tree(root, files, seed=3)
    # 1) index the source tree fully, measuring time to first searchable result.
    ttfr, proc = time_to_first_result(root, {})
    sampler = RssSampler(proc.pid).start()
    out, _ = proc.communicate()
    sampler.stop()
    source_report = json.loads(out)
    # 2) no-change re-index (CLI wall time, median of 3).
    nochange = []
    for _ in range(3):
        res, _s, wall = run_cli(["index", str(root), "--json"], sample=False)
        assert json.loads(res.stdout)["chunks_embedded"] == 0
        nochange.append(wall)
    # 3) search latency on the finished index.
    lat = json.loads(
        subprocess.run(
            [sys.executable, "-c", _SEARCH_CHILD, str(root)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    # 4) add big files and a single-line file; index with the real model (capped time).
    for i, mb in enumerate(big_mb):
        big_text_file(root / "data" / f"big{i}.csv", mb, seed=i)
    single_line_file(root / "dist" / "bundle.min.js", line_mb)
    res, sampler2, wall = run_cli(["index", str(root), "--json"], timeout=big_seconds)
    big_report = json.loads(res.stdout) if res.stdout.strip() else {}
    return {
        "files": files,
        "time_to_first_result_s": round(ttfr, 2),
        "source_index": {
            k: source_report[k] for k in ("added", "chunks_embedded", "seconds", "peak_rss_bytes")
        },
        "source_index_sampled_peak_rss_bytes": sampler.peak,
        "nochange_reindex_s": [round(x, 2) for x in nochange],
        "nochange_reindex_median_s": round(statistics.median(nochange), 2),
        "search_latency_ms": {
            "p50": round(pct(lat, 50) * 1000, 1),
            "p95": round(pct(lat, 95) * 1000, 1),
            "n": len(lat),
        },
        "big_files_mb": big_mb,
        "single_line_mb": line_mb,
        "big_run_wall_s": round(wall, 1),
        "big_run_capped_at_s": big_seconds,
        "big_run_report": big_report,
        "big_run_sampled_peak_rss_bytes": sampler2.peak,
        "big_run_rss_series": sampler2.samples[:: max(1, len(sampler2.samples) // 400)],
    }


def memory_fake(work: Path, small: int, large: int) -> dict:
    out = {}
    for n in (small, large):
        root = work / f"fake{n}"
        generate_tree(root, n, seed=5, functions=1)
        res, sampler, wall = run_cli(["index", str(root), "--json"], env=FAKE)
        rep = json.loads(res.stdout)
        out[n] = {
            "files": n,
            "wall_s": round(wall, 1),
            "peak_rss_bytes": rep["peak_rss_bytes"],
            "sampled_peak_rss_bytes": sampler.peak,
            "chunks": rep["chunks_written"],
        }
        shutil.rmtree(root, ignore_errors=True)
    out["ratio"] = round(out[large]["peak_rss_bytes"] / out[small]["peak_rss_bytes"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument(
        "--big-seconds",
        type=float,
        default=420,
        help="cap on the real-model run over the big files (then Ctrl-C)",
    )
    ap.add_argument("--only", default="throughput,real,fake")
    args = ap.parse_args()
    q = args.quick
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="codeindex-bench-"))
    data: dict = {"machine": machine()}
    try:
        if "throughput" in only:
            data["throughput"] = throughput(work, 30 if q else 150)
        if "real" in only:
            data["memory_real"] = memory_real(
                work,
                200 if q else 2000,
                [1, 2] if q else [15, 25, 50],
                2 if q else 20,
                60 if q else args.big_seconds,
            )
        if "fake" in only:
            data["memory_fake"] = memory_fake(work, 2000 if q else 20_000, 20_000 if q else 200_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(Path(args.out), "core", data, render(data))
    return 0


def render(d: dict) -> str:
    m = d["machine"]
    lines = [
        "# codeindex core benchmark",
        "",
        f"Machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}; "
        f"{m['date']}; `{m['command']}`",
        "",
    ]
    t = d.get("throughput")
    if t:
        lines += [
            "## Throughput (real model, same chunk texts, medians of 2, side by side)",
            "",
            f"- bare `model.encode` (sentence-transformers, batch 32): "
            f"{t['bare_chunks_per_s']} chunks/s",
            f"- bare builtin encoder (`{t.get('encoder')}` backend, batch 32): "
            f"{t.get('bare_builtin_chunks_per_s')} chunks/s",
            f"- whole pipeline (scan, chunk, write, embed, write vectors): "
            f"{t['pipeline_chunks_per_s']} chunks/s",
            f"- ratio to the library's encode: **{t['ratio']}** (target ≥ 0.9) — "
            f"{t['chunks']} chunks",
            "",
        ]
    r = d.get("memory_real")
    if r:
        big = r["big_run_report"]
        lines += [
            "## Real model, generated tree",
            "",
            f"- {r['files']} files: peak RSS {_mib_gb(r['source_index']['peak_rss_bytes'])}, "
            f"{r['source_index']['chunks_embedded']} chunks embedded in "
            f"{r['source_index']['seconds']:.0f} s",
            f"- time from `index` start to first search with results: "
            f"{r['time_to_first_result_s']} s",
            f"- no-change re-index (CLI wall, median of 3): "
            f"**{r['nochange_reindex_median_s']} s** (target ≤ 3 s)",
            f"- search latency (warm, k=10): p50 {r['search_latency_ms']['p50']} ms, "
            f"p95 {r['search_latency_ms']['p95']} ms",
            f"- plus big files {r['big_files_mb']} MB and a {r['single_line_mb']} MB "
            f"single-line file: peak RSS **"
            f"{_mib_gb(big.get('peak_rss_bytes', r['big_run_sampled_peak_rss_bytes']))}"
            f"** (target ≤ 1.0 GB; run capped at {r['big_run_capped_at_s']} s, "
            f"then stopped with Ctrl-C: {big.get('chunks_embedded', '?')} chunks embedded "
            f"by then, interrupted={big.get('interrupted')})",
            "",
        ]
    f = d.get("memory_fake")
    if f:
        keys = [k for k in f if k != "ratio"]
        lines += ["## Fake embedder, file-count scaling", ""]
        for k in keys:
            lines.append(
                f"- {f[k]['files']} files ({f[k]['chunks']} chunks): peak RSS "
                f"{f[k]['peak_rss_bytes'] / 2**20:.0f} MiB in {f[k]['wall_s']} s"
            )
        lines += [f"- ratio: **{f['ratio']}** (target ≤ 1.2)", ""]
    return "\n".join(lines) + "\n"


def _mib_gb(n: int) -> str:
    """Bytes as MiB and decimal GB: the target is in GB, the plots in MiB."""
    return f"{n / 2**20:.0f} MiB ({n / 1e9:.3f} GB)"


if __name__ == "__main__":
    raise SystemExit(main())
