"""A lean sentence encoder for BERT-family sentence-transformers models, in plain torch.

Why it exists: importing ``sentence_transformers`` pulls in transformers' model zoo,
scipy, scikit-learn, sympy and torch's compiler and distributed packages, about 190 MiB
of resident memory that encoding never uses. For the common layout (the bundled
all-MiniLM-L6-v2 and its kin: a BERT encoder, mean pooling, optional L2 normalise) the
forward pass is a few dozen lines over the model's own safetensors weights, so
codeindex runs it directly and keeps sentence-transformers for every other model.

Contract: ``BertEncoder.encode(texts)`` returns what
``SentenceTransformer(path).encode(texts, normalize_embeddings=True)`` returns for the
same directory (same tokenisation, truncation at the model's ``max_seq_length``; vectors
equal to float32 rounding, tested), as float32 numpy. ``load(path)`` returns None for a
directory outside that layout; the caller then uses sentence-transformers. The layout,
hyper-parameters and tokenisation come from :mod:`codeindex.embedding.bert_layout`, shared
with the numpy query encoder (:mod:`codeindex.embedding.numpy_bert`), which runs this same
forward pass without torch.

Only :mod:`codeindex.embedding.model` imports this module, and only when a model is
loaded: importing it imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# layout_problem is re-exported: the torch encoder's callers ask it which models it runs.
from codeindex.embedding.bert_layout import (
    BertConfig,
    encoder_weights,
    layout_problem,
    load_tokenizer,
    token_ids,
)

__all__ = ["BertEncoder", "layout_problem"]


class BertEncoder:
    """BERT forward pass + mean pooling + L2 normalisation; see the module docstring.

    Not thread-safe (the tokenizer's padding state is shared): the embedder serialises
    calls. Weights live on ``device``; fp16 there when ``half``.
    """

    def __init__(self, path: Path, device: str = "cpu", half: bool = False) -> None:
        from safetensors.torch import load_file

        self.config = BertConfig.read(path)
        self.layers, self.heads, self.eps = self.config.layers, self.config.heads, self.config.eps
        self.device = torch.device(device)
        dtype = torch.float16 if half else torch.float32
        weights = load_file(str(path / "model.safetensors"))
        self.w = {
            k: v.to(device=self.device, dtype=dtype)
            for k, v in encoder_weights(weights).items()
            if v.is_floating_point()
        }
        del weights
        self.tokenizer = load_tokenizer(path, self.config)

    @classmethod
    def load(cls, path: Path, device: str = "cpu", half: bool = False) -> BertEncoder | None:
        """The encoder for ``path``, or None when its layout is not supported."""
        if layout_problem(path) is not None:
            return None
        return cls(path, device, half)

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        w = self.w
        return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"], w[name + ".bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (float32, one row per text, in order)."""
        ids_np, mask_np = token_ids(self.tokenizer, self.config, texts)
        ids = torch.from_numpy(ids_np).to(self.device)
        mask = torch.from_numpy(mask_np).to(self.device)
        with torch.inference_mode():
            return self._forward(ids, mask).float().cpu().numpy()

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        attend = mask.bool()[:, None, None, :]  # (batch, 1, 1, length): keys to attend
        heads = self.heads
        dim = x.shape[-1] // heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self._linear(x, p + "attention.self." + n)
                .view(batch, length, heads, dim)
                .transpose(1, 2)
                for n in ("query", "key", "value")
            )
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
            a = a.transpose(1, 2).reshape(batch, length, heads * dim)
            x = self._norm(
                self._linear(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
            )
            h = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(self._linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)
