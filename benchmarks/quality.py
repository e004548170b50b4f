"""Search-quality benchmark: NDCG@10 and friends on a code-retrieval benchmark directory.

    python benchmarks/quality.py [BENCH_DIR] [--work DIR] [--out benchmarks/results]
        [--repos a,b] [--variants hybrid,lexical,...] [--model fake-hash-384] [--per-query]

BENCH_DIR (default ``../shared/quality-dev``) holds ``repos.json``, ``annotations/<name>.json``
and the sources, either as ``repos.tar.xz`` (unpacked once into the work folder, never into
the project) or as ``repos/<name>/``. Each repository's ``benchmark_root`` (or the whole
repository) is indexed with the default settings into ``WORK/indexes/<name>``; a later run
reuses an index whose sources and settings did not change (``codeindex index`` is
incremental), so ranking experiments cost seconds. Every query runs through
:meth:`codeindex.service.CodeIndex.search`, the code path of ``codeindex search``, in this
process, one index open per repository.

The metric is the benchmark's own (see BENCH_DIR/README.md): targets are ``relevant`` +
``secondary`` with gain 1; a hit covers a target when the paths match (equal, or one ends
with ``/`` + the other) and, when the target has lines, the ranges overlap; each target
takes the rank of the first hit that covers it, one target per hit. The headline is the
mean over repositories of the per-repository mean NDCG@10.

Variants (``--variants``) are ablations run on the same indexes in the same process:
``hybrid`` (what users get), ``lexical`` (full-text side only), ``vector`` (vector side
only), ``fused`` (both sides fused, no code-aware rules) and ``-RULE`` for each rule in
:data:`codeindex.ranking.RULES` (hybrid without that one rule). Writes ``quality.json``
and ``quality.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, pct, run_facts, write_report  # noqa: E402

K = 10
CATEGORIES = ("architecture", "semantic", "symbol")
REFERENCE_NAMES = {
    "semble_hybrid": "semble hybrid",
    "coderankembed_hybrid": "CodeRankEmbed hybrid",
    "bm25_stemmed": "BM25 (function chunks)",
}


# ------------------------------------------------------------------ metric
@dataclass(frozen=True)
class Target:
    path: str
    start: int | None = None
    end: int | None = None


def parse_target(raw: str | dict[str, Any]) -> Target:
    if isinstance(raw, str):
        return Target(raw)
    return Target(raw["path"], int(raw["start_line"]), int(raw["end_line"]))


def paths_match(a: str, b: str) -> bool:
    """Equal, or one ends with ``/`` + the other (hits and targets may differ in root)."""
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def covers(hit: dict[str, Any], t: Target) -> bool:
    if not paths_match(hit["path"], t.path):
        return False
    if t.start is None or hit.get("start_line") is None:
        return True
    return not (int(hit["end_line"]) < t.start or int(hit["start_line"]) > t.end)


def score_query(hits: Sequence[dict[str, Any]], targets: Sequence[Target], k: int = K) -> dict:
    """NDCG@k, Recall@k and MRR@k of one ranked hit list, as the benchmark defines them."""
    covered: set[int] = set()
    dcg = 0.0
    first: int | None = None
    for rank, hit in enumerate(hits[:k], start=1):
        for i, t in enumerate(targets):
            if i not in covered and covers(hit, t):
                covered.add(i)  # one target per hit: the next one looks further down
                dcg += 1.0 / math.log2(rank + 1)
                first = first or rank
                break
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(targets)) + 1))
    return {
        "ndcg": dcg / idcg if idcg else 0.0,
        "recall": len(covered) / len(targets) if targets else 0.0,
        "mrr": 1.0 / first if first else 0.0,
    }


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarise(per_query: list[dict[str, Any]], languages: dict[str, str]) -> dict[str, Any]:
    """Per-repository means, then means over repositories (overall, per category)."""
    repos: dict[str, list[dict[str, Any]]] = {}
    for q in per_query:
        repos.setdefault(q["repo"], []).append(q)
    per_repo = {}
    for name, qs in repos.items():
        row = {m: _mean([q[m] for q in qs]) for m in ("ndcg", "recall", "mrr")}
        for cat in CATEGORIES:
            vals = [q["ndcg"] for q in qs if q["category"] == cat]
            row[f"ndcg_{cat}"] = _mean(vals) if vals else None
        row["language"] = languages.get(name, "")
        row["queries"] = len(qs)
        per_repo[name] = row
    out = {m: _mean([r[m] for r in per_repo.values()]) for m in ("ndcg", "recall", "mrr")}
    for cat in CATEGORIES:
        vals = [r[f"ndcg_{cat}"] for r in per_repo.values() if r[f"ndcg_{cat}"] is not None]
        out[f"ndcg_{cat}"] = _mean(vals)
    lines = [q["lines_per_hit"] for q in per_query if q["lines_per_hit"] is not None]
    out["median_lines_per_hit"] = statistics.median(lines) if lines else None
    lat = [q["ms"] for q in per_query]
    out["latency_ms_p50"] = pct(lat, 50)
    out["latency_ms_p95"] = pct(lat, 95)
    out["per_repo"] = per_repo
    return out


# ------------------------------------------------------------------ data
def load_bench(bench: Path, work: Path, only: set[str]) -> list[dict[str, Any]]:
    """The repositories (with their queries and source folder), sources unpacked once."""
    repos = json.loads((bench / "repos.json").read_text())
    src_root = bench / "repos"
    tarball = bench / "repos.tar.xz"
    if not src_root.is_dir() and tarball.exists():
        src_root = work / "src"
        stamp = src_root / ".unpacked"
        want = f"{tarball.stat().st_size}:{tarball.stat().st_mtime_ns}"
        if not stamp.exists() or stamp.read_text() != want:
            print(f"unpacking {tarball} into {src_root} ...", file=sys.stderr)
            src_root.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball) as tf:
                tf.extractall(src_root, filter="data")
            stamp.write_text(want)
    out = []
    for r in repos:
        if only and r["name"] not in only:
            continue
        root = src_root / r["name"]
        if r.get("benchmark_root"):
            root = root / r["benchmark_root"]
        ann = bench / "annotations" / f"{r['name']}.json"
        if not root.is_dir() or not ann.exists():
            print(f"skipping {r['name']}: no sources or annotations", file=sys.stderr)
            continue
        queries = json.loads(ann.read_text())
        out.append({**r, "root": root, "queries": queries})
    return out


def variant_ranking(name: str) -> Any:
    from codeindex.ranking import RULES, Ranking

    if name == "hybrid":
        return Ranking()
    if name == "lexical":
        return Ranking(vector=False)
    if name == "vector":
        return Ranking(lexical=False)
    if name == "fused":
        return Ranking(rules=frozenset())
    if name.startswith("-") and name[1:] in RULES:
        return Ranking(rules=frozenset(RULES) - {name[1:]})
    raise SystemExit(f"unknown variant {name!r}: hybrid, lexical, vector, fused or -RULE")


# ------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> dict[str, Any]:
    from codeindex.config import load_settings
    from codeindex.embedding import get_embedder
    from codeindex.service import CodeIndex

    bench = Path(args.bench).resolve()
    work = Path(args.work).resolve()
    repos = load_bench(bench, work, set(filter(None, args.repos.split(","))))
    if not repos:
        raise SystemExit(f"no repositories found in {bench}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rankings = {v: variant_ranking(v) for v in variants}
    overrides = {"model": args.model} if args.model else {}
    embedder = None  # one model for every repository (one per process)
    per_variant: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    index_info: dict[str, Any] = {}
    for r in repos:
        settings = load_settings(
            r["root"], index_dir=work / "indexes" / r["name"], env={}, **overrides
        )
        if embedder is None:
            embedder = get_embedder(settings)
        ci = CodeIndex(settings, embedder=embedder)
        stamp = settings.index_dir / "build_seconds.json"
        t0 = time.perf_counter()
        report = ci.index()
        seconds = time.perf_counter() - t0
        # index_seconds is the last full build's time; an incremental run keeps it.
        if not stamp.exists() or (report.added and not report.unchanged):
            stamp.write_text(json.dumps({"seconds": seconds}))
        st = ci.status(check_stale=False)
        index_info[r["name"]] = {
            "files": st.files,
            "chunks": st.chunks,
            "index_seconds": json.loads(stamp.read_text())["seconds"],
            "this_run_seconds": round(seconds, 2),
            "embedded_this_run": report.chunks_embedded,
        }
        print(
            f"{r['name']}: {st.files} files, {st.chunks} chunks, "
            f"index {index_info[r['name']]['index_seconds']:.1f}s",
            file=sys.stderr,
        )
        ci.search(r["queries"][0]["query"], K)  # warm: caches and the model
        for v in variants:
            for q in r["queries"]:
                targets = [parse_target(t) for t in q["relevant"] + q.get("secondary", [])]
                t1 = time.perf_counter()
                res = ci.search(q["query"], K, ranking=rankings[v]).as_dict()
                ms = (time.perf_counter() - t1) * 1000
                hits = res["results"]
                s = score_query(hits, targets)
                spans = [h["end_line"] - h["start_line"] + 1 for h in hits]
                per_variant[v].append(
                    {
                        "repo": r["name"],
                        "category": q.get("category", ""),
                        "query": q["query"],
                        **s,
                        "ms": ms,
                        "lines_per_hit": statistics.median(spans) if spans else None,
                        "top": [f"{h['path']}:{h['start_line']}-{h['end_line']}" for h in hits],
                    }
                )
        ci.close()
    languages = {r["name"]: r.get("language", "") for r in repos}
    summaries = {v: summarise(per_variant[v], languages) for v in variants}
    refs = _references(bench, [r["name"] for r in repos])
    return {
        "machine": machine(),
        "commit": _commit(),
        "bench": str(bench),
        "model": args.model or "default",
        "k": K,
        "repos": len(repos),
        "queries": sum(len(r["queries"]) for r in repos),
        "index": index_info,
        "references": refs,
        "variants": summaries,
        "per_query": per_variant if args.per_query else None,
    }


def _references(bench: Path, names: list[str]) -> dict[str, Any]:
    path = bench / "reference_scores.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    per_repo = data.get("per_repo", {})
    out: dict[str, Any] = {}
    for system in REFERENCE_NAMES:
        vals = {n: per_repo[n][system] for n in names if system in per_repo.get(n, {})}
        if vals:
            out[system] = {"mean": _mean(list(vals.values())), "per_repo": vals}
    return out


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _f(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(data: dict[str, Any]) -> str:
    out = [
        "# codeindex search quality",
        "",
        f"{data['repos']} repositories, {data['queries']} queries from `{data['bench']}`; "
        f"model {data['model']}; {run_facts(data)}.",
        "",
        "| variant | NDCG@10 | architecture | semantic | symbol | Recall@10 | MRR@10 "
        "| lines/hit | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, s in data["variants"].items():
        out.append(
            f"| {v} | **{_f(s['ndcg'])}** | {_f(s['ndcg_architecture'])} | "
            f"{_f(s['ndcg_semantic'])} | {_f(s['ndcg_symbol'])} | {_f(s['recall'])} | "
            f"{_f(s['mrr'])} | {s['median_lines_per_hit']} | {s['latency_ms_p50']:.1f} | "
            f"{s['latency_ms_p95']:.1f} |"
        )
    for system, ref in data["references"].items():
        out.append(f"| *{REFERENCE_NAMES[system]}* | {_f(ref['mean'])} | | | | | | | | |")
    first = next(iter(data["variants"]))
    out += [
        "",
        f"## Per repository ({first})",
        "",
        "| repository | language | NDCG@10 | "
        + " | ".join(REFERENCE_NAMES[s] for s in data["references"])
        + " | files | chunks | index s |",
        "|---|---|---|" + "---|" * len(data["references"]) + "---|---|---|",
    ]
    for name, row in data["variants"][first]["per_repo"].items():
        refs = [_f(ref["per_repo"].get(name)) for ref in data["references"].values()]
        ix = data["index"][name]
        out.append(
            f"| {name} | {row['language']} | **{_f(row['ndcg'])}** | "
            + " | ".join(refs)
            + f" | {ix['files']} | {ix['chunks']} | {ix['index_seconds']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bench", nargs="?", default=str(here.parent.parent / "shared" / "quality-dev"))
    p.add_argument("--work", default=str(here / "results" / "quality-work"))
    p.add_argument("--out", default=str(here / "results"))
    p.add_argument("--name", default="quality", help="report file name (without extension)")
    p.add_argument("--repos", default="", help="comma-separated subset of repository names")
    p.add_argument("--variants", default="hybrid,lexical,vector,fused")
    p.add_argument("--model", default="", help="e.g. fake-hash-384 (default: the bundled model)")
    p.add_argument("--per-query", action="store_true", help="keep every query's hits")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data = run(args)
    write_report(Path(args.out), args.name, data, markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
