"""The numpy query encoder: the torch encoder's vectors without torch, used for search
queries in a process that has not loaded the torch model, so that ``codeindex search``
never imports torch and stays compatible with indexes the torch encoder built."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codeindex.config import DEFAULT_MODEL, load_settings
from codeindex.embedding import ModelEmbedder, bundled_model_path
from codeindex.embedding.bert import BertEncoder
from codeindex.embedding.numpy_bert import NumpyBertEncoder, gelu
from codeindex.errors import CodeIndexError, ConfigError
from tests.conftest import FIXTURE, copy_model

pytestmark = pytest.mark.model

PACKAGE = Path(__file__).resolve().parent.parent / "codeindex"

TOLERANCE = 1e-5  # max abs difference per component, the index's compatibility promise

_QUERIES = [
    "where are JWTs validated",
    "retry with exponential backoff",
    "parse the config file",
    "LRU cache eviction",
    "hash a password with a salt",
    "rate limiter token bucket",
    "csv parser that handles quoted fields",
    "how is the database connection pooled?",
    "validate_jwt",
    "PasswordHasher",
    "def __init__",
    "SELECT * FROM users WHERE id = ?",
    "backup script rsync",
    "TODO: fix this",
    "error handling when the socket closes",
    "func (r *Retry) Do(ctx context.Context) error",
    "impl<K: Hash + Eq, V> LruCache<K, V>",
    "async function fetchWithRetry(url, opts)",
    "why does the index grow without bound?",
    "HTTP 429 Too Many Requests",
]

_UNICODE = [
    "naïve café — 中文 🙂 Ünïcödé",
    "日本語のテキストを検索する",
    "поиск по коду",
    "بحث عن الكود",
    "emoji only 🚀🔥💯",
    "combining e\u0301 and a\u0308",
    "zero\u200bwidth\u200bjoiners",
    "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ",
    "tabs\tand\r\nwindows newlines",
    "control \x00 \x07 \x1b[31m chars",
    "Ελληνικά και ελληνικά",
    "한국어 코드 검색",
]

_EMPTYISH = ["", " ", "\n", "\t\t", "   \n  \n", ".", "?", "x", "[CLS]", "[SEP] [PAD] [UNK]"]


def _texts() -> list[str]:
    """About 200 texts of every shape a query or a chunk takes, the same on every run."""
    rng = random.Random(7)
    chunks = []
    # The sample repo's code and prose, and this package's own: code of every shape.
    sources = [*sorted(FIXTURE.rglob("*")), *sorted((PACKAGE / "embedding").glob("*.py"))]
    for path in sources:
        if path.is_file() and path.suffix in {".py", ".go", ".ts", ".rs", ".md", ".js", ".c"}:
            body = path.read_text(encoding="utf-8", errors="replace")
            chunks += [body[i : i + 300] for i in range(0, len(body), 300)]
    chunks = chunks[::2][:90]
    words = " ".join(chunks).split()
    long = [
        "def f(x):\n    return x + 1\n" * 200,
        "alpha beta gamma " * 400,
        " ".join(rng.choice(words) for _ in range(600)),
        "中文" * 600,
        "a" * 5000,  # one over-long word: a single [UNK]
    ]
    # Word salads of random lengths: every padding length a batch can have.
    salads = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(70)]
    texts = _QUERIES + _UNICODE + _EMPTYISH + chunks + long + salads
    assert len(texts) >= 200
    return texts


@pytest.fixture(scope="module")
def encoders() -> tuple[NumpyBertEncoder, BertEncoder]:
    path = bundled_model_path()
    return NumpyBertEncoder(path), BertEncoder(path)


def test_numpy_vectors_equal_the_torch_encoder(encoders) -> None:
    ours, torch_enc = encoders
    texts = _texts()
    theirs = np.concatenate([torch_enc.encode(texts[i : i + 16]) for i in range(0, len(texts), 16)])
    # One text at a time (the query path: no padding) and in batches of texts sorted by
    # length, as the embedder batches (padded keys masked; less padding to compute).
    single = np.concatenate([ours.encode([t]) for t in texts])
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batched = np.empty_like(single)
    for i in range(0, len(order), 16):
        batched[order[i : i + 16]] = ours.encode([texts[j] for j in order[i : i + 16]])
    for got in (single, batched):
        assert got.dtype == np.float32 and got.shape == theirs.shape == (len(texts), 384)
        worst = np.abs(got - theirs).max(axis=1)
        assert worst.max() < TOLERANCE, (worst.max(), texts[int(worst.argmax())][:80])
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_numpy_truncates_at_the_model_window(encoders) -> None:
    ours, _ = encoders
    long = "alpha beta gamma " * 400
    assert len(ours.tokenizer.encode(long).ids) == 256
    a, b = ours.encode([long, long + " omega" * 100])
    assert np.abs(a - b).max() < 1e-6


def test_numpy_encoder_holds_one_copy_of_the_weights(encoders) -> None:
    """Resident weights no larger than the file (fused q/k/v replaced their parts)."""
    ours, _ = encoders
    size = (bundled_model_path() / "model.safetensors").stat().st_size
    assert 0.9 * size < ours.nbytes <= size


def test_gelu_matches_torch() -> None:
    import torch

    x = torch.linspace(-12, 12, 400_001)
    expected = torch.nn.functional.gelu(x).numpy()
    got = gelu(x.numpy())
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-6


def test_numpy_encoder_refuses_another_layout(tmp_path: Path) -> None:
    model = copy_model(tmp_path / "roberta")
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(cfg | {"model_type": "roberta"}))
    with pytest.raises(ValueError, match="not a BERT model"):
        NumpyBertEncoder(model)
    # auto falls back to the model itself; numpy is refused with the reason.
    auto = ModelEmbedder(str(model), device="cpu")
    assert auto.embed_query("validate a token").shape == (384,)
    assert auto.query_backend == "sentence-transformers"
    forced = ModelEmbedder(str(model), device="cpu", query_encoder="numpy")
    with pytest.raises(CodeIndexError, match="numpy query encoder cannot run.*BERT"):
        forced.embed_query("x")


def test_queries_use_numpy_until_the_model_loads_then_the_model() -> None:
    emb = ModelEmbedder(DEFAULT_MODEL, device="cpu")
    query = "where are JWTs validated"
    first = emb.embed_query(query)
    assert emb.query_backend == "numpy" and emb.loads == 0 and emb.loaded
    assert first.shape == (384,) and first.dtype == np.float32

    batch = emb.embed([query, "def validate_jwt(token): ..."])  # indexing loads torch
    assert emb.loads == 1 and emb._query_model is None  # one model per process, not two
    second = emb.embed_query(query)
    assert emb.query_backend == "builtin"
    assert np.abs(first - second).max() < TOLERANCE
    assert np.abs(first - batch[0]).max() < TOLERANCE

    # After an idle unload the model (not the numpy encoder) serves queries again.
    assert emb.unload() and not emb.loaded
    emb.embed_query(query)
    assert emb.query_backend == "builtin" and emb.loads == 2


def test_unload_drops_the_numpy_encoder() -> None:
    emb = ModelEmbedder(DEFAULT_MODEL, device="cpu")
    emb.embed_query("parse the config")
    assert emb.loaded and emb.unload() and not emb.loaded
    assert not emb.unload()
    emb.embed_query("parse the config")
    assert emb.query_backend == "numpy" and emb.loads == 0


def test_query_encoder_setting_forces_one_and_is_validated(tmp_path: Path) -> None:
    torch_only = ModelEmbedder(DEFAULT_MODEL, device="cpu", query_encoder="torch")
    torch_only.embed_query("retry with backoff")
    assert torch_only.query_backend == "builtin"
    # A user who forced the library for embedding gets it for queries too.
    library = ModelEmbedder(DEFAULT_MODEL, device="cpu", encoder="sentence-transformers")
    assert not library._numpy_query()

    assert load_settings(tmp_path, env={}).query_encoder == "auto"
    env = {"CODEINDEX_QUERY_ENCODER": "torch"}
    assert load_settings(tmp_path, env=env).query_encoder == "torch"
    with pytest.raises(ConfigError, match="query_encoder = 'onnx' is not one of"):
        load_settings(tmp_path, env={"CODEINDEX_QUERY_ENCODER": "onnx"})
    with pytest.raises(CodeIndexError, match="query_encoder 'onnx'"):
        ModelEmbedder(DEFAULT_MODEL, query_encoder="onnx")


# `codeindex search` in a fresh process, as from the shell; the child reports the heavy
# modules it imported and whether the numpy encoder ran.
_SEARCH_CHILD = """
import contextlib, io, json, sys
from codeindex.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["search", "where are JWTs validated", "--path", sys.argv[1], "--json"])
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
numpy_ran = "codeindex.embedding.numpy_bert" in sys.modules
print(json.dumps({"code": code, "heavy": heavy, "numpy": numpy_ran,
                  "result": json.loads(out.getvalue())}))
"""


def _search_child(root: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CODEINDEX_")}
    res = subprocess.run(
        [sys.executable, "-c", _SEARCH_CHILD, str(root)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_cli_search_does_not_import_torch(real_index) -> None:
    root = real_index.settings.root
    cold = _search_child(root)
    assert cold["code"] == 0 and cold["heavy"] == [] and cold["numpy"]
    hits = cold["result"]["results"]
    assert cold["result"]["coverage"] == 1.0 and hits[0]["path"] == "auth/tokens.py"

    # The torch encoder, forced, ranks the same hits with the same scores.
    forced = _search_child(root, CODEINDEX_QUERY_ENCODER="torch")
    assert forced["heavy"] and "torch" in forced["heavy"] and not forced["numpy"]
    theirs = forced["result"]["results"]
    assert [(h["path"], h["start_line"]) for h in hits] == [
        (h["path"], h["start_line"]) for h in theirs
    ]
    assert np.allclose([h["score"] for h in hits], [h["score"] for h in theirs], atol=1e-4)
