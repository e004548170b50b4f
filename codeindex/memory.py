"""Memory probe and the batch-size governor.

The probe reads the process's RSS and peak RSS, the machine's available memory and
any cgroup limit. The governor turns those into an embedding batch size and a
pressure level that the pipeline obeys (shrink batches, flush early, pause intake).
Only stdlib + psutil: importing this module must stay cheap.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# Bytes of transient memory one sequence costs per word piece in a MiniLM-sized
# encoder forward pass under inference_mode (attention maps of 12 heads + hidden
# states, with allocator slack): measured ~34 KiB at 256 tokens, rounded up.
_BYTES_PER_TOKEN_ITEM = 48 * 1024
_SAFETY_BYTES = 128 * 1024 * 1024

_UNLIMITED = 1 << 60


def _read_int(path: Path) -> int | None:
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if not raw or raw == "max":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    # cgroup v1 reports "no limit" as a huge page-aligned number.
    return value if 0 < value < _UNLIMITED else None


def cgroup_limit_bytes() -> int | None:
    """The memory limit of this process's cgroup (v2 or v1), or None when unlimited."""
    candidates: list[Path] = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                rel = parts[2].lstrip("/")
                candidates.append(Path("/sys/fs/cgroup") / rel / "memory.max")
            elif len(parts) == 3 and "memory" in parts[1].split(","):
                rel = parts[2].lstrip("/")
                candidates.append(Path("/sys/fs/cgroup/memory") / rel / "memory.limit_in_bytes")
    except OSError:
        pass
    candidates += [
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ]
    for cand in candidates:
        value = _read_int(cand)
        if value is not None:
            return value
    return None


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since it started."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass(frozen=True)
class MemoryLimit:
    """The process's memory budget and where it came from."""

    bytes: int
    source: str  # "setting", "cgroup" or "physical"


def resolve_limit(memory_limit_mb: int) -> MemoryLimit:
    """memory_limit_mb if set; else the cgroup limit; else 60% of physical memory."""
    if memory_limit_mb > 0:
        return MemoryLimit(memory_limit_mb * 1024 * 1024, "setting")
    cg = cgroup_limit_bytes()
    total = psutil.virtual_memory().total
    if cg is not None and cg < total:
        return MemoryLimit(cg, "cgroup")
    return MemoryLimit(int(total * 0.6), "physical")


def snapshot(memory_limit_mb: int = 0) -> dict[str, object]:
    """Memory telemetry for status reports (all sizes in bytes)."""
    limit = resolve_limit(memory_limit_mb)
    return {
        "rss_bytes": rss_bytes(),
        "peak_rss_bytes": peak_rss_bytes(),
        "available_bytes": psutil.virtual_memory().available,
        "limit_bytes": limit.bytes,
        "limit_source": limit.source,
        "cgroup_limit_bytes": cgroup_limit_bytes(),
    }


class Pressure:
    NORMAL = "normal"
    SOFT = "soft"  # shrink batches, flush buffers early, release caches
    HARD = "hard"  # pause intake until memory falls back


class Governor:
    """Chooses embedding batch sizes from free memory and reports pressure.

    Thread-safe. ``soft``/``hard`` are fractions of the limit at which pressure
    starts. ``batch_size(tokens)`` never exceeds ``max_batch`` nor goes below 1.
    """

    def __init__(
        self,
        memory_limit_mb: int = 0,
        max_batch: int = 64,
        min_batch: int = 1,
        soft: float = 0.80,
        hard: float = 0.92,
        batch_budget_mb: int = 128,
    ) -> None:
        self.limit = resolve_limit(memory_limit_mb)
        # Activations of one batch may use at most this much, however much is free:
        # a big batch is barely faster on CPU but costs hundreds of MB of peak RSS.
        self.batch_budget = max(1, batch_budget_mb) * 1024 * 1024
        self.max_batch = max(1, max_batch)
        self.min_batch = max(1, min(min_batch, self.max_batch))
        self.soft = soft
        self.hard = hard
        self._lock = threading.Lock()
        self._ceiling = self.max_batch  # lowered after an out-of-memory error
        self.device = "cpu"  # set to "cuda" by the embedder: size from device memory
        self.last_batch_size = 0
        self.smallest_batch_size = self.max_batch
        self.oom_retries = 0
        self.pauses = 0

    def headroom_bytes(self) -> int:
        """Bytes one batch may still allocate: min(limit - RSS, available) minus slack
        on the CPU; free device memory (``torch.cuda.mem_get_info``) on a GPU."""
        if self.device.startswith("cuda"):
            torch = sys.modules.get("torch")
            if torch is not None:
                free, _total = torch.cuda.mem_get_info()
                return int(free * 0.8)
        rss = rss_bytes()
        avail = psutil.virtual_memory().available
        return min(self.limit.bytes - rss, avail) - _SAFETY_BYTES

    def pressure(self) -> str:
        used = rss_bytes() / max(1, self.limit.bytes)
        if used >= self.hard:
            return Pressure.HARD
        if used >= self.soft:
            return Pressure.SOFT
        return Pressure.NORMAL

    def batch_size(self, max_tokens: int) -> int:
        """Batch size for sequences of up to ``max_tokens`` word pieces."""
        per_item = max(1, max_tokens) * _BYTES_PER_TOKEN_ITEM
        fit = min(self.headroom_bytes(), self.batch_budget) // per_item
        with self._lock:
            size = int(max(self.min_batch, min(self._ceiling, fit)))
            if self.pressure() != Pressure.NORMAL:
                size = max(self.min_batch, size // 2)
            self.last_batch_size = size
            self.smallest_batch_size = min(self.smallest_batch_size, size)
        return size

    def wait_for_room(self, stop, max_wait: float = 30.0, log=None) -> bool:
        """Above the hard threshold: release caches and pause (up to ``max_wait`` s,
        or until ``stop`` is set) until memory falls back. Returns True if it paused.
        The pause is bounded so a limit below the model's own size degrades to slow
        progress at the minimum batch size instead of a hang."""
        if self.pressure() != Pressure.HARD:
            return False
        if log is not None:
            log.warning(
                "memory above the hard threshold (RSS %d MiB of a %d MiB limit); "
                "pausing intake until it falls",
                rss_bytes() >> 20,
                self.limit.bytes >> 20,
            )
        release_caches()
        deadline = time.monotonic() + max_wait
        while self.pressure() == Pressure.HARD and time.monotonic() < deadline:
            if stop.wait(0.2):  # wakes at once on Ctrl-C
                break
            release_caches()
        with self._lock:
            self.pauses += 1
        return True

    def on_oom(self, failed_size: int) -> int:
        """Record an out-of-memory error at ``failed_size``; return the size to retry with
        (half), or 0 when even one item cannot be embedded."""
        release_caches()
        with self._lock:
            self.oom_retries += 1
            if failed_size <= 1:
                return 0
            self._ceiling = max(1, failed_size // 2)
            return self._ceiling


_M_ARENA_MAX = -8  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


def tune_allocator(arenas: int = 2, mmap_threshold: int = 256 * 1024) -> bool:
    """Tune glibc malloc for a long-lived process with many native threads. Call early,
    before threads start. Returns True when applied.

    * Cap arenas: LanceDB's many worker threads otherwise each get an arena, and freed
      memory fragments across them — measured, RSS of a writer grew ~1 MB per commit
      without the cap and stayed flat with it (plus trim).
    * Fix the mmap threshold: by default glibc raises it (up to 32 MB) after large
      blocks are freed, so embedding activations and index-build buffers end up on the
      heap, where they fragment. Fixed at 256 KiB, large blocks are mapped and go back
      to the OS when freed — measured, peak RSS of a real-model index of 400 files
      976 → 861 MB.
    * Route Arrow's allocations through malloc (unless ``ARROW_DEFAULT_MEMORY_POOL`` is
      set): pyarrow's own allocator keeps freed pages and grows in steps, so every
      batch handed to LanceDB left memory behind that neither the mmap threshold nor
      :func:`trim` could return — measured, streaming a 512 MB file: median RSS
      296 → 239 MiB, and the one-time step of about +20 MiB a 2 GB file showed is gone.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    _arrow_uses_malloc()
    ok = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and ok


def _arrow_uses_malloc() -> None:
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return  # the user's choice
    # pyarrow reads the variable on import (and its child processes inherit it)...
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    pa = sys.modules.get("pyarrow")
    if pa is not None:  # ...or it is already imported: later allocations use malloc
        pa.set_memory_pool(pa.system_memory_pool())


def trim() -> None:
    """Return the allocator's free pages to the OS (cheap; glibc only)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def release_caches() -> None:
    """Give memory back: Python garbage, the allocator's free pages, CUDA's cache."""
    gc.collect()
    trim()
    torch = sys.modules.get("torch")  # only if something already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def open_fd_count() -> int:
    """Number of open file descriptors of this process (for leak checks)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return psutil.Process().num_fds()
