"""The model layout codeindex's own BERT encoders run, read without torch.

Two encoders run the same forward pass over the same files: :mod:`.bert` (torch; batches
while indexing) and :mod:`.numpy_bert` (numpy; one query in a process that has not
loaded torch). What they must agree on lives here, once: which model directories
qualify (:func:`layout_problem`), the hyper-parameters (:class:`BertConfig`), the
tokenisation as sentence-transformers does it (:func:`load_tokenizer`, :func:`token_ids`)
and the weights' names (:func:`encoder_weights`).

Imports ``tokenizers`` and numpy only, so the numpy encoder never pays for torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"

T = TypeVar("T")


def read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    """The JSON at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def layout_problem(path: Path) -> str | None:
    """Why the model directory at ``path`` is not one the builtin encoders run, or None.

    They run exactly: modules Transformer (at the root) → Pooling (mean tokens only) →
    optional Normalize; a ``bert`` config with absolute positions and GELU; weights in
    ``model.safetensors``; a fast ``tokenizer.json``.
    """
    modules = read_json(path / "modules.json")
    if not isinstance(modules, list):
        return "no modules.json"
    types = [m.get("type") for m in modules if isinstance(m, dict)]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        return f"modules {types} are not Transformer, Pooling[, Normalize]"
    if modules[0].get("path", "") not in ("", "."):
        return "the transformer is not at the model's root"
    pooling = read_json(path / modules[1].get("path", "1_Pooling") / "config.json")
    if not isinstance(pooling, dict):
        return "no pooling config"
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        return f"pooling {sorted(modes)} is not mean tokens"
    config = read_json(path / "config.json")
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


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of a model directory that passes :func:`layout_problem`."""

    layers: int
    heads: int
    eps: float  # LayerNorm epsilon
    max_len: int  # tokens per text, special tokens included: sentence-transformers' window
    lowercase: bool  # sentence-transformers' do_lower_case, applied before the tokenizer
    pad_id: int

    @classmethod
    def read(cls, path: Path) -> BertConfig:
        """Read ``config.json`` and ``sentence_bert_config.json`` under ``path``."""
        config = read_json(path / "config.json")
        assert isinstance(config, dict), "call layout_problem() first"
        st_config = read_json(path / "sentence_bert_config.json")
        st_config = st_config if isinstance(st_config, dict) else {}
        positions = int(config["max_position_embeddings"])
        return cls(
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
            max_len=min(int(st_config.get("max_seq_length") or positions), positions),
            lowercase=bool(st_config.get("do_lower_case", False)),
            pad_id=int(config.get("pad_token_id", 0) or 0),
        )


def load_tokenizer(path: Path, config: BertConfig) -> Any:
    """The model's ``tokenizers.Tokenizer``, truncating at ``config.max_len`` and padding a
    batch to its longest text, as sentence-transformers encodes.

    Not thread-safe (its padding state is shared): callers serialise encoding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(config.max_len)
    tokenizer.enable_padding(pad_id=config.pad_id, pad_token=tokenizer.id_to_token(config.pad_id))
    return tokenizer


def token_ids(
    tokenizer: Any, config: BertConfig, texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask) of ``texts``, both int64 of shape (len(texts), longest)."""
    if config.lowercase:  # sentence-transformers' do_lower_case, before the normaliser
        texts = [t.lower() for t in texts]
    enc = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


def encoder_weights(weights: Mapping[str, T]) -> dict[str, T]:
    """The embedding and encoder weights of a checkpoint, named as in BertModel
    (``embeddings.…``, ``encoder.layer.N.…``); the pooler and heads are dropped.
    Callers still drop non-float buffers such as ``embeddings.position_ids``."""
    if not any(k.startswith("embeddings.") for k in weights):
        # Some checkpoints keep BertModel's weights under a "bert." prefix.
        weights = {k[5:]: v for k, v in weights.items() if k.startswith("bert.")}
    return {k: v for k, v in weights.items() if k.startswith(("embeddings.", "encoder."))}
