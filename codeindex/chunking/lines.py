"""The line model and the line-window chunker.

Line model (shared by every chunker so line numbers agree everywhere):

* a line ends at ``"\\n"``; a ``"\\r"`` right before it is dropped (CRLF files);
* a lone ``"\\r"`` is not a line break;
* a final line without ``"\\n"`` counts; an empty text has no lines;
* line numbers are 1-based and inclusive.

:class:`LineWindower` is the single implementation of window packing. The whole-file
chunker, the syntax chunker (for code between and inside oversized definitions) and the
streaming chunker all feed it, which is what makes their output identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from codeindex.chunking.tokens import TokenCounter, heuristic_token_count, token_budget
from codeindex.config import Settings
from codeindex.types import Chunk

BOM = "\ufeff"


def decode(data: bytes) -> str:
    """Decode file bytes: UTF-8 with ``errors="replace"``, one leading BOM removed.

    Line endings are left untouched (see :func:`iter_lines` for the line model).
    """
    text = data.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(BOM) else text


def iter_lines(text: str) -> Iterator[str]:
    """Yield the lines of ``text`` without terminators, per the module's line model."""
    pos = 0
    end = len(text)
    while pos < end:
        nl = text.find("\n", pos)
        if nl < 0:
            yield text[pos:]  # final line without "\n"; a lone "\r" in it is content
            return
        # Slice once, without the CR: big files have millions of lines.
        yield text[pos : nl - 1 if nl > pos and text[nl - 1] == "\r" else nl]
        pos = nl + 1


def is_blank(text: str) -> bool:
    """True for text made only of whitespace; such chunks are never emitted."""
    return not text or text.isspace()  # same whitespace as str.strip(), no copy


class LineWindower:
    """Packs numbered lines into chunks that respect every chunk limit.

    Feed lines in order with :meth:`add_line` (or, for a line that is being streamed,
    its pieces with :meth:`add_piece`), then call :meth:`flush`. Each method yields the
    chunks completed by that call. Guarantees:

    * a chunk has at most ``max_chunk_lines`` lines and ``max_chunk_chars`` characters,
      and ``count_tokens(chunk.text) <= max_chunk_tokens - 2``;
    * a line longer than :attr:`line_limit` is cut into pieces of exactly
      :attr:`line_limit` characters (the last one shorter); each piece becomes its own
      chunk(s) on that line number;
    * nothing is truncated or reordered: text is only dropped when a would-be chunk is
      whitespace only, and leading/trailing blank lines of a window are trimmed.
    """

    def __init__(
        self,
        path: str,
        language: str,
        settings: Settings,
        count_tokens: TokenCounter | None = None,
        *,
        symbol: str = "",
        kind: str = "lines",
    ) -> None:
        self.path = path
        self.language = language
        self.symbol = symbol
        self.kind = kind
        self.max_lines = max(1, settings.max_chunk_lines)
        self.max_chars = max(1, settings.max_chunk_chars)
        # A line that could never fit in a chunk by characters is treated as over-long.
        self.line_limit = max(1, min(settings.max_line_chars, self.max_chars))
        self.budget = token_budget(settings)
        self.count = count_tokens or heuristic_token_count
        # An additive counter (the heuristic, the WordPiece counter) gives a window's
        # count as the sum of its lines' counts: no second pass. Any other counter (a
        # test's strict counter) is re-checked on the joined text.
        self._additive = bool(getattr(self.count, "additive", False))
        self._prefix_end = getattr(self.count, "prefix_end", None)
        self._buf: list[str] = []
        self._start = 0
        self._chars = 0
        self._tokens = 0

    # ---- feeding ----
    def add_line(self, number: int, text: str) -> Iterator[Chunk]:
        """Add one whole line (without terminator)."""
        limit = self.line_limit
        if len(text) > limit:
            for i in range(0, len(text), limit):
                yield from self.add_piece(number, text[i : i + limit])
            return
        buf = self._buf
        if not buf and is_blank(text):
            return  # never start a window with blank lines
        tokens = self.count(text)
        if buf and (
            len(buf) >= self.max_lines
            or self._chars + 1 + len(text) > self.max_chars
            or self._tokens + tokens > self.budget
        ):
            yield from self.flush()
            if is_blank(text):
                return
        if not self._buf:
            self._start = number
            self._chars = len(text)
        else:
            self._chars += 1 + len(text)
        self._buf.append(text)
        self._tokens += tokens

    def add_piece(self, number: int, piece: str) -> Iterator[Chunk]:
        """Add one piece (at most :attr:`line_limit` chars) of an over-long line.

        Pieces never share a chunk with other text, so the pending window is flushed.
        """
        yield from self.flush()
        if not is_blank(piece):
            yield from self._fit_line(number, piece)

    def flush(self) -> Iterator[Chunk]:
        """Emit the pending window, if any (blank lines at its end are trimmed)."""
        buf = self._buf
        if not buf:
            return
        start = self._start
        over_budget = self._tokens > self.budget
        self._buf = []
        self._chars = 0
        self._tokens = 0
        while buf and is_blank(buf[-1]):
            buf.pop()
        if not buf:
            return
        text = "\n".join(buf)
        if not over_budget and (self._additive or self.count(text) <= self.budget):
            yield self._chunk(start, start + len(buf) - 1, text)
        else:
            yield from self._split_lines(start, buf)

    # ---- splitting windows that the token counter rejects ----
    def _split_lines(self, start: int, lines: list[str]) -> Iterator[Chunk]:
        """Greedy re-pack of ``lines`` using exact counts of the joined text."""
        group: list[str] = []
        group_start = start
        for offset, line in enumerate(lines):
            number = start + offset
            if group and self.count("\n".join([*group, line])) <= self.budget:
                group.append(line)
                continue
            if group:
                yield from self._emit_group(group_start, group)
                group = []
            if is_blank(line):
                continue
            if self.count(line) <= self.budget:
                group = [line]
                group_start = number
            else:
                yield from self._split_chars(number, line)
        if group:
            yield from self._emit_group(group_start, group)

    def _emit_group(self, start: int, group: list[str]) -> Iterator[Chunk]:
        while group and is_blank(group[-1]):
            group = group[:-1]
        if group:
            yield self._chunk(start, start + len(group) - 1, "\n".join(group))

    def _fit_line(self, number: int, text: str) -> Iterator[Chunk]:
        if self.count(text) <= self.budget:
            yield self._chunk(number, number, text)
        else:
            yield from self._split_chars(number, text)

    def _split_chars(self, number: int, text: str) -> Iterator[Chunk]:
        """Cut one line into the longest prefixes that fit the token budget.

        A counter with ``prefix_end`` (the heuristic, the WordPiece counter) cuts in one
        pass. Otherwise — or where it declines — a binary search assumes counts grow
        with length (true of any tokenizer up to boundary effects); at least one
        character is taken per step so the loop always ends, even for a counter that
        rejects single characters.
        """
        pos = 0
        while pos < len(text):
            end = self._prefix_end(text, pos, self.budget) if self._prefix_end else None
            if end is not None:
                if not is_blank(text[pos:end]):
                    yield self._chunk(number, number, text[pos:end])
                pos = end
                continue
            lo, hi = 1, len(text) - pos
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(text[pos : pos + mid]) <= self.budget:
                    lo = mid
                else:
                    hi = mid - 1
            piece = text[pos : pos + lo]
            if not is_blank(piece):
                yield self._chunk(number, number, piece)
            pos += lo

    def _chunk(self, start: int, end: int, text: str) -> Chunk:
        return Chunk(
            path=self.path,
            start_line=start,
            end_line=end,
            text=text,
            language=self.language,
            symbol=self.symbol,
            kind=self.kind,
        )


def line_chunks(
    path: str,
    lines: Iterable[str],
    language: str,
    settings: Settings,
    count_tokens: TokenCounter | None = None,
) -> Iterator[Chunk]:
    """Line-window chunks of ``lines`` (lines without terminators, numbered from 1).

    Chunks have ``kind="lines"`` and ``symbol=""``; see :class:`LineWindower` for the
    limits every chunk satisfies. Lazy: memory is one window plus the current line.
    """
    windower = LineWindower(path, language, settings, count_tokens)
    for number, line in enumerate(lines, start=1):
        yield from windower.add_line(number, line)
    yield from windower.flush()
