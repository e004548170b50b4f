"""Soak test of the MCP server: many ``search_code`` calls through a real stdio client.

    python benchmarks/mcp_soak.py [--calls 10000] [--out benchmarks/results]

Indexes a copy of fixtures/sample_repo with the real bundled model (in a subprocess),
then starts ``python -m codeindex mcp --root <copy>`` (real model, watching on, as a
user would run it) and measures:

* time from spawning the server to the first successful ``search_code`` (target ≤ 5 s;
  that answer may come from the full-text side while the model loads) and to the first
  semantic one;
* p50/p95/p99 latency of sequential, varied ``search_code`` calls (client round trip);
* server RSS (psutil on the server pid) after the first 500 calls vs after all of them
  (target: growth ≤ 2 %), and open fds and threads at the same two points (target: equal).

Writes ``mcp_soak.json`` and ``mcp_soak.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine, pct, write_report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "sample_repo"
WARM_CALLS = 500
# The SDK's stdio transport reads and writes through anyio worker threads, which are
# started on demand and exit after 10 s idle; probes taken at an arbitrary instant see
# one or two of them come and go. "Settled" probes wait this long first.
SETTLE_S = 11.0
RSS_GROWTH_TARGET = 0.02
FIRST_SEARCH_TARGET_S = 5.0

QUERIES = [
    "validate_jwt",
    "where are JWTs validated",
    "token expiry check",
    "hash a password with a salt",
    "PasswordHasher",
    "rate limiter token bucket",
    "retry with exponential backoff",
    "LRU cache eviction",
    "least recently used",
    "parse csv rows",
    "split a line on commas with quotes",
    "build a SQL query",
    "escape sql parameters",
    "backup script tar",
    "read the configuration file",
    "settings yaml database url",
    "architecture overview",
    "how does the storage layer work",
    "error handling when a request fails",
    "sleep between attempts",
    "struct with a hashmap",
    "linked list node",
    "http client timeout",
    "signature verification",
    "base64 decode",
    "compare digests in constant time",
    "function that returns a promise",
    "go mutex lock",
    "C string buffer",
    "shell script with set -e",
]
FILTERS: list[dict[str, Any]] = [
    {},
    {},
    {},
    {"language": "python"},
    {"path_glob": "net/**"},
    {"path_glob": "**/*.rs"},
    {"max_tokens": 400},
    {"max_tokens": 1500},
]


def _rss(proc: psutil.Process) -> int:
    return proc.memory_info().rss


def _probe(proc: psutil.Process) -> dict[str, int]:
    return {"rss_bytes": _rss(proc), "open_fds": proc.num_fds(), "threads": proc.num_threads()}


def _index(root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "codeindex", "index", str(root), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    return time.perf_counter() - t0


async def _soak(root: Path, calls: int, errlog_path: Path) -> dict[str, Any]:
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codeindex", "mcp", "--root", str(root)], env=env
    )
    rng = random.Random(1234)
    out: dict[str, Any] = {}
    with open(errlog_path, "w") as errlog:
        t_spawn = time.perf_counter()
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            out["initialize_s"] = round(time.perf_counter() - t_spawn, 3)
            first = await session.call_tool("search_code", {"query": "validate_jwt", "k": 5})
            assert not first.is_error, first.content
            out["first_search_s"] = round(time.perf_counter() - t_spawn, 3)
            out["first_search_semantic"] = first.structured_content["semantic"]
            while True:  # until the model is loaded (searches report semantic=true)
                res = await session.call_tool("search_code", {"query": "jwt", "k": 1})
                if res.structured_content["semantic"]:
                    break
                await asyncio.sleep(0.05)
            out["first_semantic_search_s"] = round(time.perf_counter() - t_spawn, 3)
            status = (await session.call_tool("index_status", {})).structured_content
            server = psutil.Process(status["server"]["pid"])
            out["state_at_start"] = status["state"]
            out["before_calls"] = _probe(server)

            latencies: list[float] = []
            rss_series: list[tuple[int, int]] = []
            thread_series: list[tuple[int, int]] = []
            errors = 0
            t_loop = time.perf_counter()
            for i in range(1, calls + 1):
                args = {"query": rng.choice(QUERIES), "k": rng.randint(1, 20)}
                args.update(rng.choice(FILTERS))
                t0 = time.perf_counter()
                res = await session.call_tool("search_code", args)
                latencies.append(time.perf_counter() - t0)
                if res.is_error:
                    errors += 1
                if i % 500 == 0:
                    rss_series.append((i, _rss(server)))
                    thread_series.append((i, server.num_threads()))
                if i == min(WARM_CALLS, calls):
                    out["after_warm_calls_raw"] = _probe(server)
                    await asyncio.sleep(SETTLE_S)
                    out["after_warm_calls"] = _probe(server)
            out["loop_s"] = round(time.perf_counter() - t_loop - SETTLE_S, 1)
            out["after_all_calls_raw"] = _probe(server)
            await asyncio.sleep(SETTLE_S)
            out["after_all_calls"] = _probe(server)
            out["errors"] = errors
            out["latency_ms"] = {
                "p50": round(pct(latencies, 50) * 1000, 2),
                "p95": round(pct(latencies, 95) * 1000, 2),
                "p99": round(pct(latencies, 99) * 1000, 2),
                "max": round(max(latencies) * 1000, 2),
                "mean": round(sum(latencies) / len(latencies) * 1000, 2),
            }
            out["rss_series"] = rss_series
            out["thread_series"] = thread_series
            final = (await session.call_tool("index_status", {})).structured_content
            out["server_peak_rss_bytes"] = final["memory"]["peak_rss_bytes"]
    return out


def _markdown(data: dict[str, Any]) -> str:
    m, r = data["machine"], data["results"]
    mib = 2**20
    warm, end = r["after_warm_calls"], r["after_all_calls"]
    raw_w, raw_e = r["after_warm_calls_raw"], r["after_all_calls_raw"]
    growth = (end["rss_bytes"] - warm["rss_bytes"]) / warm["rss_bytes"]
    checks = data["checks"]

    def ok(name: str) -> str:
        return "PASS" if checks[name] else "FAIL"

    lines = [
        "# MCP soak: search_code through a real stdio client",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
        f"{m['platform']}",
        f"- command: `{m['command']}`",
        f"- load average (1 min) before / after: {data['load_average_1m']['before']:.2f} / "
        f"{data['load_average_1m']['after']:.2f} (on {m['cores']} cores)",
        f"- corpus: fixtures/sample_repo (real model all-MiniLM-L6-v2), "
        f"{data['calls']} sequential calls, {len(QUERIES)} queries x {len(FILTERS)} filter "
        "variants, k 1-20",
        "",
        "| measure | value | target | result |",
        "|---|---|---|---|",
        f"| spawn → first successful search_code | {r['first_search_s']:.2f} s "
        f"(semantic: {r['first_search_semantic']}) | ≤ {FIRST_SEARCH_TARGET_S:.0f} s "
        f"| {ok('first_search')} |",
        f"| spawn → first semantic search_code | {r['first_semantic_search_s']:.2f} s | - | - |",
        f"| spawn → initialize answered | {r['initialize_s']:.2f} s | - | - |",
        f"| latency p50 / p95 / p99 | {r['latency_ms']['p50']:.1f} / "
        f"{r['latency_ms']['p95']:.1f} / {r['latency_ms']['p99']:.1f} ms | - | - |",
        f"| latency max / mean | {r['latency_ms']['max']:.1f} / {r['latency_ms']['mean']:.1f} "
        "ms | - | - |",
        f"| server RSS after {WARM_CALLS} → after {data['calls']} | "
        f"{warm['rss_bytes'] / mib:.1f} → {end['rss_bytes'] / mib:.1f} MiB "
        f"({growth:+.2%}) | ≤ +{RSS_GROWTH_TARGET:.0%} | {ok('rss_growth')} |",
        f"| open fds after {WARM_CALLS} → after {data['calls']} (settled) | {warm['open_fds']} → "
        f"{end['open_fds']} | equal | {ok('fds')} |",
        f"| threads after {WARM_CALLS} → after {data['calls']} (settled) | {warm['threads']} → "
        f"{end['threads']} | equal | {ok('threads')} |",
        f"| threads, fds at the same points, unsettled | {raw_w['threads']} → "
        f"{raw_e['threads']}, {raw_w['open_fds']} → {raw_e['open_fds']} | - | - |",
        f"| tool errors | {r['errors']} | 0 | {ok('errors')} |",
        "",
        f"Before the first soak call: RSS {r['before_calls']['rss_bytes'] / mib:.1f} MiB, "
        f"{r['before_calls']['open_fds']} fds, {r['before_calls']['threads']} threads "
        "(the SDK starts its worker threads on the first calls, hence the warm-up).",
        f"Server peak RSS: {r['server_peak_rss_bytes'] / mib:.1f} MiB. "
        f"Soak loop: {r['loop_s']} s. Index build beforehand: {data['index_s']:.1f} s.",
        "",
        "RSS every 500 calls (MiB): "
        + ", ".join(f"{n}: {b / mib:.1f}" for n, b in r["rss_series"]),
        "",
        "Threads every 500 calls: " + ", ".join(f"{n}: {t}" for n, t in r["thread_series"]),
        "",
        f"Settled probes wait {SETTLE_S:.0f} s idle first: the SDK's stdio transport "
        "uses anyio worker threads that start on demand and exit after 10 s idle.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000, help="search_code calls (default 10000)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if args.calls < WARM_CALLS:
        ap.error(f"--calls must be at least {WARM_CALLS} (the warm-up)")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mcp-soak-") as tmp:
        root = Path(tmp) / "repo"
        shutil.copytree(FIXTURE, root, symlinks=True, ignore=shutil.ignore_patterns(".codeindex"))
        index_s = _index(root)
        results = asyncio.run(_soak(root, args.calls, Path(tmp) / "server.stderr"))
    warm, end = results["after_warm_calls"], results["after_all_calls"]
    checks = {
        "first_search": results["first_search_s"] <= FIRST_SEARCH_TARGET_S,
        "rss_growth": end["rss_bytes"] <= warm["rss_bytes"] * (1 + RSS_GROWTH_TARGET),
        "fds": end["open_fds"] == warm["open_fds"],
        "threads": end["threads"] == warm["threads"],
        "errors": results["errors"] == 0,
    }
    data = {
        "machine": machine(),
        "calls": args.calls,
        "index_s": round(index_s, 2),
        # Other work on the machine inflates latencies; the load average says how much.
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "results": results,
        "targets": {
            "first_search_s": FIRST_SEARCH_TARGET_S,
            "rss_growth": RSS_GROWTH_TARGET,
            "fds": "equal",
            "threads": "equal",
        },
        "checks": checks,
        "passed": all(checks.values()),
    }
    write_report(args.out, "mcp_soak", data, _markdown(data))
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
