"""The model's token counter: exact WordPiece counts from the tokenizer alone (the
``tokenizers`` package; no torch), fast and additive over lines for the chunkers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


def load_counter(model_dir: Path) -> Callable[[str], int]:
    """The token counter of the model at ``model_dir`` (word pieces, no special tokens),
    read from its ``tokenizer.json``.

    For a BERT-style WordPiece tokenizer (the bundled model's) it is the fast,
    additive :class:`WordPieceCounter`; for any other tokenizer, a plain encode.
    """
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
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
        return WordPieceCounter(
            tok,
            lowercase=bool(norm.get("lowercase", True)),
            max_word_chars=int(model.get("max_input_chars_per_word", 100)),
            special=[t["content"] for t in cfg.get("added_tokens") or []],
        )
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)
