"""The search-quality benchmark: its metric, checked by hand, and a CI-sized smoke run
(two repositories, the fake embedder) so the full benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import FIXTURE

_SPEC = importlib.util.spec_from_file_location(
    "quality_bench", Path(__file__).resolve().parent.parent / "benchmarks" / "quality.py"
)
quality = importlib.util.module_from_spec(_SPEC)
sys.modules["quality_bench"] = quality  # dataclasses look their module up there
_SPEC.loader.exec_module(quality)


def hit(path: str, start: int = 1, end: int = 10) -> dict:
    return {"path": path, "start_line": start, "end_line": end}


def test_ndcg_of_a_perfect_and_an_empty_list():
    targets = [quality.parse_target("a.py"), quality.parse_target("b.py")]
    assert quality.score_query([hit("a.py"), hit("b.py")], targets)["ndcg"] == pytest.approx(1.0)
    assert quality.score_query([hit("c.py")], targets) == {"ndcg": 0.0, "recall": 0.0, "mrr": 0.0}


def test_ndcg_ranks_each_target_at_its_first_covering_hit():
    targets = [quality.parse_target("x/a.py")]
    # rank 3: DCG 1/log2(4) = 0.5, IDCG 1 (one target)
    s = quality.score_query([hit("b.py"), hit("c.py"), hit("a.py")], targets)
    assert s["ndcg"] == pytest.approx(0.5)
    assert s["mrr"] == pytest.approx(1 / 3)
    assert s["recall"] == 1.0


def test_one_hit_covers_one_target_and_duplicates_earn_nothing():
    targets = [quality.parse_target("a.py"), quality.parse_target("a.py")]
    # The second target needs a second hit of a.py: ranks 1 and 3.
    s = quality.score_query([hit("a.py"), hit("b.py"), hit("a.py")], targets)
    idcg = 1 + 1 / math.log2(3)
    assert s["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    # A file target is covered once: a second hit of the same file adds nothing.
    single = [quality.parse_target("a.py"), quality.parse_target("b.py")]
    s = quality.score_query([hit("a.py"), hit("a.py", 20, 30), hit("b.py")], single)
    assert s["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)


def test_line_targets_need_overlap_and_paths_match_by_suffix():
    t = quality.parse_target({"path": "pkg/mod.py", "start_line": 50, "end_line": 60})
    assert not quality.covers(hit("mod.py", 1, 49), t)
    assert quality.covers(hit("mod.py", 60, 70), t)
    assert quality.covers(hit("root/pkg/mod.py", 40, 50), t)
    assert not quality.covers(hit("xmod.py", 55, 56), t)  # suffix must start at a "/"


def test_summary_is_a_mean_of_repository_means():
    rows = [
        {"repo": "r1", "category": "semantic", "ndcg": 1.0, "recall": 1, "mrr": 1},
        {"repo": "r1", "category": "symbol", "ndcg": 0.0, "recall": 0, "mrr": 0},
        {"repo": "r1", "category": "symbol", "ndcg": 0.0, "recall": 0, "mrr": 0},
        {"repo": "r2", "category": "semantic", "ndcg": 1.0, "recall": 1, "mrr": 1},
    ]
    for r in rows:
        r.update(ms=1.0, lines_per_hit=5)
    s = quality.summarise(rows, {})
    assert s["ndcg"] == pytest.approx((1 / 3 + 1.0) / 2)  # not 2/4
    assert s["ndcg_semantic"] == pytest.approx(1.0)
    assert s["ndcg_symbol"] == pytest.approx(0.0)  # r2 has no symbol queries


def _bench_dir(tmp_path: Path) -> Path:
    """A benchmark directory in the published format: two repositories from the sample
    repo, one indexed whole and one at a benchmark_root, sources in a tarball."""
    bench = tmp_path / "bench"
    (bench / "annotations").mkdir(parents=True)
    src = tmp_path / "srcs"
    shutil.copytree(FIXTURE, src / "whole", ignore=shutil.ignore_patterns(".codeindex"))
    shutil.copytree(FIXTURE, src / "sub", ignore=shutil.ignore_patterns(".codeindex"))
    with tarfile.open(bench / "repos.tar.xz", "w:xz") as tf:
        for child in src.iterdir():
            tf.add(child, arcname=child.name)
    repos = [
        {"name": "whole", "language": "python", "benchmark_root": None},
        {"name": "sub", "language": "go", "benchmark_root": "net"},
    ]
    (bench / "repos.json").write_text(json.dumps(repos))
    (bench / "annotations" / "whole.json").write_text(
        json.dumps(
            [
                {"query": "validate_jwt", "category": "symbol", "relevant": ["auth/tokens.py"]},
                {
                    "query": "hash a password",
                    "category": "semantic",
                    "relevant": ["auth/java/PasswordHasher.java"],
                    "secondary": [],
                },
            ]
        )
    )
    (bench / "annotations" / "sub.json").write_text(
        json.dumps(
            [
                {
                    "query": "token bucket rate limiter",
                    "category": "architecture",
                    "relevant": [{"path": "net/ratelimit.go", "start_line": 1, "end_line": 400}],
                }
            ]
        )
    )
    (bench / "reference_scores.json").write_text(
        json.dumps({"per_repo": {"whole": {"bm25_stemmed": 0.5}, "sub": {"bm25_stemmed": 0.7}}})
    )
    return bench


def test_smoke_run_writes_a_report(tmp_path: Path):
    bench = _bench_dir(tmp_path)
    out = tmp_path / "out"
    rc = quality.main(
        [
            str(bench),
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
            "--model",
            "fake-hash-384",
            "--variants",
            "hybrid,lexical,fused,-file_name",
        ]
    )
    assert rc == 0
    data = json.loads((out / "quality.json").read_text())
    assert data["repos"] == 2 and data["queries"] == 3
    assert set(data["variants"]) == {"hybrid", "lexical", "fused", "-file_name"}
    hybrid = data["variants"]["hybrid"]
    for key in ("ndcg", "recall", "mrr", "ndcg_symbol", "latency_ms_p50", "latency_ms_p95"):
        assert 0 <= hybrid[key] < math.inf
    # A symbol query for a definition: the lexical side alone finds its file first.
    assert data["variants"]["lexical"]["per_repo"]["whole"]["ndcg_symbol"] == pytest.approx(1.0)
    assert data["index"]["sub"]["files"] == 2  # only net/ was indexed
    assert data["references"]["bm25_stemmed"]["mean"] == pytest.approx(0.6)
    md = (out / "quality.md").read_text()
    assert "| hybrid |" in md and "BM25" in md
    # A second run reuses the indexes (nothing re-embedded) and scores the same.
    quality.main(
        [str(bench), "--work", str(tmp_path / "work"), "--out", str(out)]
        + ["--model", "fake-hash-384", "--variants", "hybrid"]
    )
    again = json.loads((out / "quality.json").read_text())
    assert again["variants"]["hybrid"]["ndcg"] == pytest.approx(hybrid["ndcg"])
    assert again["index"]["whole"]["embedded_this_run"] == 0
