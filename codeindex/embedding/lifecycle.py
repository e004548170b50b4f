"""Model lifecycle: the one shared embedder per process (loaded lazily on first embed),
idle unload for the long-running modes, and the one thread that runs the model."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from codeindex.config import Settings
from codeindex.embedding.fake import FAKE_MODEL, FakeEmbedder
from codeindex.embedding.model import ModelEmbedder
from codeindex.embedding.protocol import Embedder
from codeindex.memory import Governor

# The package's one logger name, as before it was split into modules.
log = logging.getLogger("codeindex.embedding")


class IdleUnloader:
    """Unloads a model after ``minutes`` without use (long-running modes: watch, MCP);
    the next embed reloads it. One daemon thread that sleeps on an Event, so it costs
    nothing while idle and stops at once."""

    def __init__(self, embedder: Embedder, minutes: float) -> None:
        self.embedder = embedder
        self.seconds = max(0.0, minutes) * 60
        self.unloads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codeindex-idle", daemon=True)

    def start(self) -> IdleUnloader:
        if self.seconds > 0 and hasattr(self.embedder, "unload"):
            self._thread.start()
        return self

    def check(self) -> bool:
        """Unload now if idle for long enough; True when it unloaded."""
        emb = self.embedder
        if not getattr(emb, "loaded", False):
            return False
        if time.monotonic() - getattr(emb, "last_used", 0.0) < self.seconds:
            return False
        if emb.unload():  # type: ignore[attr-defined]
            self.unloads += 1
            log.info("model unloaded after %.0f s idle", self.seconds)
            return True
        return False

    def _run(self) -> None:
        interval = max(1.0, min(60.0, self.seconds / 4))
        while not self._stop.wait(interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class EmbedThread:
    """An Embedder that runs every ``embed`` of the wrapped one on one long-lived thread.

    For front ends that embed from many threads (the MCP server's tool pool): torch
    keeps an OpenMP thread team per thread that runs the model, so embedding from
    whichever thread serves a search would add a team per thread (cores - 1 threads
    each). The model serialises encoding anyway, so one thread costs no throughput.
    Everything else (``governor``, ``loaded``, ``unload``...) is the wrapped embedder's.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="codeindex-embed")

    @property
    def count_tokens(self) -> Callable[[str], int]:
        return self.inner.count_tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._thread.submit(self.inner.embed, texts).result()

    def embed_query(self, text: str) -> np.ndarray:
        # On the thread too: the query may run on the torch model.
        return self._thread.submit(self.inner.embed_query, text).result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        """Stop the thread; calls still queued are cancelled."""
        self._thread.shutdown(wait=False, cancel_futures=True)


_shared: dict[tuple[str, str], Embedder] = {}
_shared_lock = threading.Lock()


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for settings.model (one model per process)."""
    key = (settings.model, settings.device)
    with _shared_lock:
        emb = _shared.get(key)
        if emb is None:
            if settings.model == FAKE_MODEL:
                emb = FakeEmbedder()
            else:
                gov = Governor(
                    settings.memory_limit_mb,
                    max_batch=settings.max_batch_size,
                    min_batch=settings.min_batch_size,
                    batch_budget_mb=settings.embed_memory_mb,
                )
                emb = ModelEmbedder(
                    settings.model,
                    settings.device,
                    gov,
                    encoder=settings.encoder,
                    query_encoder=settings.query_encoder,
                )
            _shared[key] = emb
        return emb
