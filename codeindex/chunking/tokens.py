"""Token counting for chunk budgets.

A chunk is embedded by a model with a fixed window (``Settings.max_chunk_tokens``,
special tokens included). Chunkers measure text with a :data:`TokenCounter`; the
pipeline passes the model's counter (exact, see ``codeindex.embedding``), and
:func:`heuristic_token_count` is the default where no model is involved (tests, tools).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from codeindex.config import Settings

TokenCounter = Callable[[str], int]
"""Number of model word pieces in a text, excluding special tokens (CLS/SEP).

A counter may also declare ``additive = True`` — ``count(a + "\\n" + b) == count(a) +
count(b)`` for any texts — and offer ``prefix_end(text, pos, budget) -> int | None``
(``None`` where it cannot decide in one pass). Chunkers then count each line once and cut
over-long lines in one pass instead of re-counting joined text and binary-searching.
"""

# Special tokens the model adds around every input (BERT-style [CLS] ... [SEP]).
SPECIAL_TOKENS = 2

# One match ≈ one word piece: an ASCII word run is cut into pieces of at most four
# characters (word-piece vocabularies rarely hold longer pieces of identifiers, numbers
# or hex), and every other non-space character (punctuation, non-ASCII letters, CJK)
# counts as a piece of its own. Measured against all-MiniLM-L6-v2 on source lines it is
# neither an upper nor a lower bound (above on ~45% of lines, below on ~25%): it is for
# chunking without a model, never for fitting chunks to a model's window.
_PIECE = re.compile(r"[A-Za-z0-9_]{1,4}|[^\sA-Za-z0-9_]")


@functools.lru_cache(maxsize=8)
def _prefix_pattern(budget: int) -> re.Pattern[str]:
    # Up to `budget` pieces, tokenized exactly as _PIECE scans (atomic/possessive, so
    # no backtracking can regroup characters into different pieces).
    return re.compile(rf"(?:\s*+(?>[A-Za-z0-9_]{{1,4}}|[^\sA-Za-z0-9_])){{1,{budget}}}")


class _HeuristicCounter:
    """Rough estimate of the word pieces in a text (no special tokens).

    Contract: deterministic, cheap (one regex pass), and additive over lines —
    ``count(a + "\\n" + b) == count(a) + count(b)`` — because no piece spans
    whitespace. Chunkers rely on that additivity to count each line once.
    """

    additive = True

    def __call__(self, text: str) -> int:
        # subn counts matches without building a list of them (faster than findall).
        return _PIECE.subn("", text)[1]

    def prefix_end(self, text: str, pos: int, budget: int) -> int:
        """End of the longest run of ``text[pos:]`` that holds at most ``budget`` pieces;
        ``len(text)`` when only whitespace is left.

        ``pos`` must be 0 or a previous return value, so piece boundaries line up. One
        regex match instead of a binary search of counts: long minified lines stay cheap.
        """
        match = _prefix_pattern(max(1, budget)).match(text, pos)
        return match.end() if match else len(text)


heuristic_token_count = _HeuristicCounter()
"""The default :data:`TokenCounter` where no model is involved (see the class)."""


def token_budget(settings: Settings) -> int:
    """Word pieces one chunk may hold: the model window minus its special tokens."""
    return max(1, settings.max_chunk_tokens - SPECIAL_TOKENS)
