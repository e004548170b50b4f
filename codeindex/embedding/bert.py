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
directory outside that layout; the caller then uses sentence-transformers.

Only :mod:`codeindex.embedding.model` imports this module, and only when a model is
loaded: importing it imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def layout_problem(path: Path) -> str | None:
    """Why the model directory at ``path`` is not one this encoder runs, or None.

    It runs exactly: modules Transformer (at the root) → Pooling (mean tokens only) →
    optional Normalize; a ``bert`` config with absolute positions and GELU; weights in
    ``model.safetensors``; a fast ``tokenizer.json``.
    """
    modules = _read_json(path / "modules.json")
    if not isinstance(modules, list):
        return "no modules.json"
    types = [m.get("type") for m in modules if isinstance(m, dict)]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        return f"modules {types} are not Transformer, Pooling[, Normalize]"
    if modules[0].get("path", "") not in ("", "."):
        return "the transformer is not at the model's root"
    pooling = _read_json(path / modules[1].get("path", "1_Pooling") / "config.json")
    if not isinstance(pooling, dict):
        return "no pooling config"
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        return f"pooling {sorted(modes)} is not mean tokens"
    config = _read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        return "not a BERT model"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "positions are not absolute"
    if config.get("hidden_act") != "gelu":
        return f"activation {config.get('hidden_act')!r} is not gelu"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            return f"no {name}"
    return None


class BertEncoder:
    """BERT forward pass + mean pooling + L2 normalisation; see the module docstring.

    Not thread-safe (the tokenizer's padding state is shared): the embedder serialises
    calls. Weights live on ``device``; fp16 there when ``half``.
    """

    def __init__(self, path: Path, device: str = "cpu", half: bool = False) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = _read_json(path / "config.json")
        assert isinstance(config, dict)
        st_config = _read_json(path / "sentence_bert_config.json")
        st_config = st_config if isinstance(st_config, dict) else {}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_len = min(
            int(st_config.get("max_seq_length") or config["max_position_embeddings"]),
            int(config["max_position_embeddings"]),
        )
        self.lowercase = bool(st_config.get("do_lower_case", False))
        self.device = torch.device(device)
        dtype = torch.float16 if half else torch.float32
        weights = load_file(str(path / "model.safetensors"))
        if not any(k.startswith("embeddings.") for k in weights):
            # Some checkpoints keep BertModel's weights under a "bert." prefix.
            weights = {k[5:]: v for k, v in weights.items() if k.startswith("bert.")}
        self.w = {
            k: v.to(device=self.device, dtype=dtype)
            for k, v in weights.items()
            if k.startswith(("embeddings.", "encoder.")) and v.is_floating_point()
        }
        del weights
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_len)
        pad_id = config.get("pad_token_id", 0) or 0
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=self.tokenizer.id_to_token(pad_id))

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
        if self.lowercase:  # sentence-transformers' do_lower_case, before the normaliser
            texts = [t.lower() for t in texts]
        enc = self.tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=self.device)
        mask = torch.tensor([e.attention_mask for e in enc], device=self.device)
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
