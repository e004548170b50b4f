"""The model's token counter: exact against the real tokenizer, additive over lines, and
fit for the chunkers' one-pass cuts. Uses the bundled tokenizer only (no torch)."""

from __future__ import annotations

import io
import random
import string

import pytest
from tokenizers import Tokenizer

from codeindex.chunking import chunk_stream, chunk_text, decode, iter_lines, line_chunks
from codeindex.config import DEFAULT_MODEL, Settings
from codeindex.embedding import ModelEmbedder, WordPieceCounter
from codeindex.languages import detect_language
from tests.conftest import FIXTURE, INDEXABLE

DEFAULT = Settings(root=FIXTURE, index_dir=FIXTURE / ".codeindex")


@pytest.fixture(scope="module")
def embedder() -> ModelEmbedder:
    return ModelEmbedder(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def tokenizer(embedder: ModelEmbedder) -> Tokenizer:
    tok = Tokenizer.from_file(str(embedder.path / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def real(tok: Tokenizer, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False).ids)


TRICKY = [
    "",
    "   \t  ",
    "def validate_jwt(token: str) -> Claims:",
    "getUserNameFromHTTPRequest2FA",
    "x" * 99 + " " + "y" * 100 + " " + "z" * 101,  # WordPiece's 100-character word limit
    "a\x01b c\x7fd\x0be\x0cf",  # control characters BERT's normaliser drops
    "naïve café — 日本語 données 𝄞 Ünïcödé",
    "see [CLS] and [SEP] or [UNK][PAD] [MASK] but not [cls]",
    "0x7fffffff,3.14159e-10,-42,1_000_000",
    "<div class='a'>{{ value | safe }}</div>\r",
    "\ufffd\ufffd replaced bytes",
]


def test_counts_equal_the_tokenizer(embedder: ModelEmbedder, tokenizer) -> None:
    count = embedder.count_tokens
    assert isinstance(count, WordPieceCounter) and count.additive
    texts = list(TRICKY)
    for rel in INDEXABLE:
        text = decode((FIXTURE / rel).read_bytes())
        texts += [text, *iter_lines(text)]
    rng = random.Random(7)
    alphabet = string.printable + "éß日\u00a0\u2003"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(300)]
    wrong = [t for t in texts if count(t) != real(tokenizer, t)]
    assert not wrong, [(t[:60], count(t), real(tokenizer, t)) for t in wrong[:5]]


def test_counts_are_additive_over_lines(embedder: ModelEmbedder, tokenizer) -> None:
    count = embedder.count_tokens
    rng = random.Random(3)
    for _ in range(200):
        a, b = rng.choice(TRICKY), rng.choice(TRICKY)
        assert real(tokenizer, a + "\n" + b) == count(a) + count(b), (a, b)


def test_one_pass_cuts_of_long_lines_fit_and_lose_nothing(
    embedder: ModelEmbedder, tokenizer
) -> None:
    settings = DEFAULT.replace(max_line_chars=5000, max_chunk_chars=5000)
    minified = "var a=function(b){return b*2};if(x&&y){z=[1,2,3].map(f)}" * 60
    for line in (minified, "word " * 900, "é" + "abc " * 800):  # the last: fallback path
        chunks = list(line_chunks("m.js", [line], "javascript", settings, embedder.count_tokens))
        assert len(chunks) > 1
        assert all(real(tokenizer, c.text) <= 254 for c in chunks)
        assert "".join(c.text for c in chunks).replace(" ", "") == line.replace(" ", "")


def test_streamed_chunks_equal_whole_file_chunks_with_the_model_counter(
    embedder: ModelEmbedder,
) -> None:
    rng = random.Random(11)
    lines = []
    for i in range(3000):
        roll = rng.random()
        if roll < 0.01:
            lines.append("x=1;" * rng.randint(200, 900))  # minified
        elif roll < 0.05:
            lines.append("données café 日本 " * rng.randint(1, 5))
        else:
            lines.append(f"{i},{rng.random():.6f},row_{rng.randint(0, 99)},value")
    data = ("\r\n".join(lines) + "\n").encode()
    count = embedder.count_tokens
    whole = list(line_chunks("d.csv", iter_lines(decode(data)), "text", DEFAULT, count))
    for buffer in (7, 4096, 1 << 20):
        settings = DEFAULT.replace(read_buffer_bytes=buffer)
        assert list(chunk_stream("d.csv", io.BytesIO(data), "text", settings, count)) == whole


def test_syntax_chunks_fit_the_model_window(embedder: ModelEmbedder, tokenizer):
    small = DEFAULT.replace(max_chunk_tokens=40)  # small windows: many splits
    for rel in INDEXABLE:
        text = decode((FIXTURE / rel).read_bytes())
        chunks = chunk_text(rel, text, detect_language(rel), small, embedder.count_tokens)
        assert chunks
        for chunk in chunks:
            assert real(tokenizer, chunk.text) <= 38, (rel, chunk.text)
