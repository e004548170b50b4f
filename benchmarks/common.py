"""Helpers shared by the benchmark scripts: machine facts, RSS sampling, reports."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def run_facts(data: dict[str, Any]) -> str:
    """ "commit C; DATE; N cores, R GiB" for a report made from ``machine()`` and a commit."""
    m = data["machine"]
    return f"commit {data['commit']}; {m['date']}; {m['cores']} cores, {m['ram_gib']} GiB"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class RssSampler:
    """Samples the RSS of a process (and its children) in a background thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self._t0, self._rss()))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((r for _, r in self.samples), default=0)


def run_cli(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    sample: bool = True,
) -> tuple[subprocess.CompletedProcess, RssSampler | None, float]:
    """Run ``python -m codeindex ARGS``; returns (result, sampler, wall seconds)."""
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codeindex", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(proc.pid).start() if sample else None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(2)  # SIGINT: the graceful stop path
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if sampler:
        sampler.stop()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sampler, wall


def write_report(out_dir: Path, name: str, data: dict[str, Any], markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (out_dir / f"{name}.md").write_text(markdown)
    print(markdown)
