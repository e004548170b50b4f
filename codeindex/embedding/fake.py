"""The fake embedder: deterministic hashed bag-of-words vectors, no model, no torch."""

from __future__ import annotations

import hashlib
import re

import numpy as np

FAKE_MODEL = "fake-hash-384"

_WORD = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


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

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector: ``embed([text])[0]``."""
        return self.embed([text])[0]

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
