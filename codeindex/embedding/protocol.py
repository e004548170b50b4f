"""What every embedder is: the ``Embedder`` protocol and the error it raises.

Contract of every Embedder:
* ``embed(texts)`` returns float32 numpy of shape (len(texts), dimension), L2-normalised,
  in input order. Texts that cannot be embedded raise ``EmbedError`` naming them;
  no placeholder vectors are ever produced.
* ``count_tokens`` is a token counter: ``count_tokens(text)`` is the number of model
  word pieces without special tokens, exactly (the chunkers fit chunks into the model
  window with it). The real and fake counters are additive over lines and offer
  ``prefix_end`` (see ``codeindex.chunking.tokens``), so chunking counts each line once.
* ``embed_query(text)`` is the vector of one search query, shape (dimension,): what
  ``embed([text])[0]`` returns, within 1e-5 per component. An embedder may run it on a
  lighter encoder than its batches (the real model: numpy instead of torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from codeindex.errors import CodeIndexError


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

    def embed_query(self, text: str) -> np.ndarray: ...
