"""The builtin BERT encoder: same vectors as sentence-transformers, chosen only for the
layout it runs, and never importing the library it replaces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codeindex.config import DEFAULT_MODEL, load_settings
from codeindex.embedding import ModelEmbedder, bundled_model_path
from codeindex.embedding.bert import BertEncoder, layout_problem
from codeindex.errors import CodeIndexError, ConfigError
from tests.conftest import copy_model

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample_repo"

pytestmark = pytest.mark.model


def _texts() -> list[str]:
    texts = []
    for path in sorted(FIXTURE.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".go", ".ts", ".rs", ".md", ".js"}:
            body = path.read_text(encoding="utf-8", errors="replace")
            texts += [body[i : i + 700] for i in range(0, len(body), 700)]
    return texts + [
        "",
        "x",
        "  leading and trailing whitespace \n\n",
        "naïve café — 中文 🙂 Ünïcödé " * 20,
        "def f(x):\n    return x + 1\n" * 200,  # far over 256 word pieces: truncated
    ]


@pytest.fixture(scope="module")
def library_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(bundled_model_path()), device="cpu")


def test_builtin_vectors_equal_the_library(library_model) -> None:
    texts = _texts()
    enc = BertEncoder(bundled_model_path())
    ours = np.concatenate([enc.encode(texts[i : i + 16]) for i in range(0, len(texts), 16)])
    theirs = library_model.encode(texts, batch_size=16, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_builtin_truncates_like_the_library(library_model) -> None:
    long = "alpha beta gamma " * 400
    enc = BertEncoder(bundled_model_path())
    ids = enc.tokenizer.encode_batch([long])[0].ids
    assert len(ids) == 256 == library_model.max_seq_length
    # Text past the window changes nothing, for both.
    a, b = enc.encode([long, long + " omega" * 100])
    assert np.abs(a - b).max() < 1e-6


def test_layout_problems_name_the_reason(tmp_path: Path) -> None:
    assert layout_problem(bundled_model_path()) is None
    cls_pooling = copy_model(tmp_path / "cls")
    cfg = json.loads((cls_pooling / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (cls_pooling / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    assert "pooling" in layout_problem(cls_pooling)
    no_weights = copy_model(tmp_path / "noweights")
    (no_weights / "model.safetensors").unlink()
    assert "model.safetensors" in layout_problem(no_weights)
    not_bert = copy_model(tmp_path / "notbert")
    cfg = json.loads((not_bert / "config.json").read_text())
    (not_bert / "config.json").write_text(json.dumps(cfg | {"model_type": "roberta"}))
    assert "BERT" in layout_problem(not_bert)
    assert BertEncoder.load(not_bert) is None


def test_auto_falls_back_to_the_library_and_builtin_refuses(tmp_path: Path) -> None:
    model = copy_model(tmp_path / "cls")
    cfg = json.loads((model / "1_Pooling" / "config.json").read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (model / "1_Pooling" / "config.json").write_text(json.dumps(cfg))

    auto = ModelEmbedder(str(model), device="cpu")
    vec = auto.embed(["def validate_jwt(token): ..."])
    assert auto.backend == "sentence-transformers" and vec.shape == (1, 384)

    forced = ModelEmbedder(str(model), device="cpu", encoder="builtin")
    with pytest.raises(CodeIndexError, match="builtin encoder cannot run.*pooling"):
        forced.embed(["x"])

    default = ModelEmbedder(DEFAULT_MODEL, device="cpu")
    library = ModelEmbedder(DEFAULT_MODEL, device="cpu", encoder="sentence-transformers")
    texts = _texts()[:20]
    a, b = default.embed(texts), library.embed(texts)
    assert (default.backend, library.backend) == ("builtin", "sentence-transformers")
    assert np.abs(a - b).max() < 1e-5


_CHILD = """
import json, sys
from codeindex.config import load_settings
from codeindex.embedding import get_embedder
emb = get_embedder(load_settings(sys.argv[1], env={}))
emb.embed(["def validate_jwt(token): ..."])
heavy = sorted(m for m in ("sentence_transformers", "transformers", "scipy", "sklearn", "sympy")
               if m in sys.modules)
print(json.dumps({"backend": emb.backend, "heavy": heavy}))
"""


def test_default_model_never_imports_the_library_stack() -> None:
    """The memory the builtin encoder saves is the modules it never imports."""
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(FIXTURE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"backend": "builtin", "heavy": []}


def test_encoder_setting_is_validated(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).encoder == "auto"
    env = {"CODEINDEX_ENCODER": "sentence-transformers"}
    assert load_settings(tmp_path, env=env).encoder == "sentence-transformers"
    with pytest.raises(ConfigError, match="encoder = 'onnx' is not one of"):
        load_settings(tmp_path, env={"CODEINDEX_ENCODER": "onnx"})


def test_a_query_is_encoded_on_one_thread_and_batches_on_all() -> None:
    """Small batches run on one torch thread (the count is restored after); batches
    keep every thread; vectors are the same either way."""
    import torch

    from codeindex.embedding import model as model_module

    seen: list[int] = []
    embedder = ModelEmbedder(DEFAULT_MODEL, device="cpu")
    real = embedder._load()

    class Recording:
        def encode(self, texts: list[str]) -> Any:
            seen.append(torch.get_num_threads())
            return real.encode(texts)

    embedder._model = Recording()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = embedder.embed(["parse the config file"])
        many = embedder.embed([f"text number {i}" for i in range(model_module.SMALL_BATCH + 1)])
        assert seen == [1, 2]
        assert torch.get_num_threads() == 2
        assert many.shape == (model_module.SMALL_BATCH + 1, embedder.dimension)
        direct = real.encode(["parse the config file"])
        assert np.allclose(one[0], direct[0], atol=1e-5)
    finally:
        torch.set_num_threads(before)
