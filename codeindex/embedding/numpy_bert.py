"""The builtin BERT encoder's forward pass in numpy: a search query without torch.

Why it exists: a ``codeindex search`` from the shell embeds one query. Importing torch
and loading the model for it cost about 1.7 CPU-seconds and 90 MiB of peak RSS per
search (measured on 2 cores, ``benchmarks/cold_search.py``); a query of a few dozen word
pieces through a six-layer MiniLM is a few dozen small matrix products, which numpy runs
about as fast (warm, one thread: 10 ms against torch's 8.5 ms). Indexing keeps the torch
encoder (:mod:`.bert`): its batches gain from torch's kernels and threads.

Contract: ``NumpyBertEncoder(path).encode(texts)`` returns what
``BertEncoder(path).encode(texts)`` returns on the CPU in fp32 — same tokenisation and
truncation (:mod:`.bert_layout`, shared), same mean pooling and L2 normalisation — equal
within 1e-5 per component (tested on a few hundred texts), so vectors from either encoder
can be searched against an index built by the other. It runs the layouts that
:func:`.bert_layout.layout_problem` accepts, and nothing else.

Resident memory: the fp32 weights (86 MiB for all-MiniLM-L6-v2, read with
``safetensors.numpy``) plus activations of one batch; measured, loading it adds about
100 MiB of RSS, against about 260 MiB for importing torch and loading the torch
encoder (``benchmarks/cold_search.py``). Imports numpy, ``safetensors``,
``tokenizers`` and ``threadpoolctl`` only; never torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from codeindex.embedding.bert_layout import (
    BertConfig,
    encoder_weights,
    layout_problem,
    load_tokenizer,
    token_ids,
)

# erfc(z) for z >= 0 by the Chebyshev fit of Numerical Recipes (erfcc): fractional error
# under 1.2e-7 everywhere, i.e. float32 rounding. numpy has no erf, and importing scipy for
# one function would cost more than the query (torch's GELU is the exact erf form).
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


def gelu(x: np.ndarray) -> np.ndarray:
    """``x * Φ(x)``, the exact GELU of ``torch.nn.functional.gelu``, in float32 (within
    5e-7 of torch's over [-12, 12], tested): ``Φ(-|x|) = erfc(|x|/√2) / 2``."""
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1 / (1 + np.float32(0.5) * z)
    # Horner's rule in place: one temporary array, not one per coefficient.
    poly = t * np.float32(_ERFC[-1])
    for c in reversed(_ERFC[1:-1]):
        poly += np.float32(c)
        poly *= t
    poly -= z * z
    poly += np.float32(_ERFC[0])
    np.exp(poly, out=poly)
    poly *= t
    poly *= np.float32(0.5)  # Φ(-|x|)
    return x * np.where(x < 0, poly, 1 - poly)


class NumpyBertEncoder:
    """BERT forward pass + mean pooling + L2 normalisation in numpy; see the module
    docstring. Same ``encode(texts)`` interface as :class:`.bert.BertEncoder`.

    ``encode`` runs numpy's BLAS on ``threads`` threads (1 by default; restored after):
    a query's products are too small to gain from a second thread, and OpenBLAS threads
    spin-wait against whatever else the machine runs — measured, a (12 × 384) · (384 ×
    1536) product on a busy 2-core machine took 0.8 ms on one thread and about 10 ms on
    two. The same reason makes the torch encoder run a query on one thread.

    Not thread-safe (the tokenizer's padding state is shared): callers serialise
    ``encode``. ``nbytes`` is the size of the weights it holds.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController

        problem = layout_problem(path)
        if problem is not None:
            raise ValueError(f"the numpy encoder cannot run the model at {path}: {problem}")
        self.config = BertConfig.read(path)
        weights = encoder_weights(load_file(str(path / "model.safetensors")))
        w = {k: v.astype(np.float32, copy=False) for k, v in weights.items() if v.dtype.kind == "f"}
        del weights
        for i in range(self.config.layers):
            # One product for query, key and value instead of three: a third of the calls,
            # which is what a short query's time goes to.
            p = f"encoder.layer.{i}.attention.self."
            for part in ("weight", "bias"):
                names = [f"{p}{n}.{part}" for n in ("query", "key", "value")]
                w[f"{p}qkv.{part}"] = np.concatenate([w.pop(n) for n in names])
        self.w = w
        self.nbytes = sum(v.nbytes for v in w.values())
        self.tokenizer = load_tokenizer(path, self.config)
        self.threads = threads
        self._blas = ThreadpoolController()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (float32, one row per text, in order)."""
        if not texts:
            return np.zeros((0, self.w["embeddings.LayerNorm.weight"].shape[0]), np.float32)
        ids, mask = token_ids(self.tokenizer, self.config, texts)
        with self._blas.limit(limits=self.threads, user_api="blas"):
            return self._forward(ids, mask)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        centred = x - mean
        var = np.mean(centred * centred, -1, keepdims=True)
        centred /= np.sqrt(var + self.config.eps)
        return centred * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        # (rows, in) @ (in, out): the transposed view goes to BLAS as is, no copy.
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, heads = self.w, self.config.heads
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        hidden = x.shape[-1]
        dim = hidden // heads
        # Rows are (text, position) pairs: every linear layer is one 2-D product.
        x = self._norm(x.reshape(batch * length, hidden), "embeddings.LayerNorm")
        # Padded keys get -inf before the softmax; a batch without padding (one query)
        # skips the addition.
        keys_bias = None
        if not mask.all():
            keys_bias = np.where(mask[:, None, None, :] > 0, 0.0, -np.inf).astype(np.float32)
        scale = np.float32(1 / math.sqrt(dim))
        for i in range(self.config.layers):
            p = f"encoder.layer.{i}."
            qkv = self._linear(x, p + "attention.self.qkv")
            # (batch, length, 3, heads, dim) -> three (batch, heads, length, dim)
            q, k, v = qkv.reshape(batch, length, 3, heads, dim).transpose(2, 0, 3, 1, 4)
            scores = (q * scale) @ k.transpose(0, 1, 3, 2)
            if keys_bias is not None:
                scores += keys_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            a = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            x = self._norm(
                self._linear(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
            )
            h = gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = mask.astype(np.float32)[:, :, None]
        pooled = (x.reshape(batch, length, hidden) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        # F.normalize's eps: a zero vector stays zero rather than becoming NaN.
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
