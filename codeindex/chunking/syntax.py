"""Syntax-aware chunking with tree-sitter.

The file's lines are partitioned into consecutive segments — definitions (functions,
methods, classes, ...) and the gaps between them — so every line belongs to exactly one
segment: no overlap, no gap, by construction. Each segment then becomes one chunk when
it fits every limit, or line windows (same symbol and kind) when it does not. A class
that does not fit is partitioned again into its members plus gaps named after the class.

Segments are whole lines: two definitions sharing a line are one segment (the first
one's name wins), since a chunk is a line range. Where a language's spec sets
``merge_clauses``, adjacent clauses of one function (Haskell equations, Elixir ``def``
clauses) are one segment as long as together they fit one chunk.

Which nodes are definitions, and their kinds and names, is decided per language in
:mod:`codeindex.chunking.definitions` and :mod:`codeindex.chunking.names`; this module
deals in lines and segments only.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from codeindex.chunking.definitions import Definition, DefinitionFinder, Scope
from codeindex.chunking.lines import LineWindower, is_blank, iter_lines
from codeindex.chunking.names import Node
from codeindex.chunking.specs import SPECS, LanguageSpec
from codeindex.chunking.tokens import TokenCounter, heuristic_token_count, token_budget
from codeindex.config import Settings
from codeindex.types import Chunk

log = logging.getLogger(__name__)

# Gap content too small to be worth a chunk of its own: closing brackets and block
# terminators ("}", "};", "end", "fi", ...). It is glued to a neighbouring segment.
_CLOSER_LINE = re.compile(r"[\W_]*(?:end|fi|done|esac)?[\W_]*")

_local = threading.local()


def _parser(language: str) -> Any:
    """A parser for ``language``, one per thread (tree-sitter parsers are not thread-safe)."""
    cache: dict[str, Any] | None = getattr(_local, "parsers", None)
    if cache is None:
        cache = _local.parsers = {}
    parser = cache.get(language)
    if parser is None:
        from tree_sitter_language_pack import get_parser

        parser = cache[language] = get_parser(language)  # type: ignore[arg-type]
    return parser


@dataclass(slots=True)
class _Seg:
    start: int  # 1-based, inclusive
    end: int
    symbol: str
    kind: str
    gap: bool


def syntax_chunks(
    path: str,
    text: str,
    language: str,
    settings: Settings,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Syntax-aware chunks of ``text``. Raises if the grammar is unavailable or the
    parser fails; :func:`codeindex.chunking.chunk_text` turns that into a fallback."""
    spec = SPECS[language]
    return _SyntaxChunker(path, text, language, spec, settings, count_tokens).run()


class _SyntaxChunker:
    def __init__(
        self,
        path: str,
        text: str,
        language: str,
        spec: LanguageSpec,
        settings: Settings,
        count_tokens: TokenCounter | None,
    ) -> None:
        self.path = path
        self.language = language
        self.spec = spec
        self.definitions = DefinitionFinder(language, spec)
        self.settings = settings
        self.count_tokens = count_tokens
        self.count = count_tokens or heuristic_token_count
        self.lines = list(iter_lines(text))
        # Tree-sitter reports byte offsets; lines are counted on "\n" bytes, which
        # UTF-8 never produces inside a multi-byte character, so the mapping is exact.
        self.src = text.encode("utf-8", "surrogatepass")
        self.newlines = [m.start() for m in re.finditer(b"\n", self.src)]
        self.prefix_chars = [0]
        for line in self.lines:
            self.prefix_chars.append(self.prefix_chars[-1] + len(line))
        self.max_lines = max(1, settings.max_chunk_lines)
        self.max_chars = max(1, settings.max_chunk_chars)
        self.line_limit = max(1, min(settings.max_line_chars, self.max_chars))
        self.budget = token_budget(settings)

    # ---- driver ----
    def run(self) -> list[Chunk]:
        if not self.lines:
            return []
        tree = _parser(self.language).parse(self.src)
        root = tree.root_node
        segs = self._partition(root.children, 1, len(self.lines), Scope())
        segs = self._merge_closers(segs)
        chunks: list[Chunk] = []
        for seg in segs:
            chunks.extend(self._emit(seg))
        return chunks

    # ---- byte offsets → line numbers ----
    def _line(self, byte: int) -> int:
        return min(bisect.bisect_left(self.newlines, byte) + 1, len(self.lines))

    def _end_line(self, node: Node) -> int:
        # end_byte is exclusive; a node ending with its "\n" ends on that "\n"'s line.
        return self._line(max(node.start_byte, node.end_byte - 1))

    def _line_start_byte(self, line: int) -> int:
        if line > len(self.lines):
            return len(self.src)
        return self.newlines[line - 2] + 1 if line >= 2 else 0

    def _starts_line(self, node: Node) -> bool:
        line_start = self._line_start_byte(self._line(node.start_byte))
        return not self.src[line_start : node.start_byte].strip()

    # ---- partitioning ----
    def _partition(
        self,
        children: Sequence[Node],
        lo: int,
        hi: int,
        scope: Scope,
        leading: Sequence[Node] = (),
    ) -> list[_Seg]:
        """Segments covering exactly lines ``lo..hi``, cut at the definitions among
        ``children`` (which must lie within those lines). ``leading``: comments found
        before ``children`` (above a namespace), which may belong to its first member."""
        segs: list[_Seg] = []
        cursor = lo  # first line not yet in a segment
        leading = list(leading)  # comments/attributes directly before the next child
        for child in children:
            if child.end_byte <= child.start_byte:
                continue  # zero-width (MISSING) nodes from error recovery
            if child.end_byte <= self._line_start_byte(cursor):
                # Entirely on lines already taken (minified code puts thousands of
                # statements on one line): nothing to decide, so skip the classifying.
                leading = []
                continue
            d = self.definitions.classify(child, scope)
            if d is None:
                if self.definitions.key(child) in self.spec.leading:
                    leading.append(child)
                else:
                    leading = self._trailing_leading(child)
                continue
            start = self._attach_leading(self._line(child.start_byte), leading, cursor)
            above, leading = leading, []
            end = min(self._end_line(child), hi)
            if start < cursor:
                # Starts on a line already taken (e.g. `class A {} class B {}`): lines
                # are indivisible, so it joins the previous segment.
                if segs:
                    segs[-1].end = max(segs[-1].end, end)
                cursor = max(cursor, end + 1)
                continue
            new = self._definition(d, start, end, scope, above)
            if d.role == "function" and self._continues(segs, new, cursor, start, end):
                segs[-1].end = end  # another clause of the same function
            else:
                if start > cursor:
                    segs.append(self._gap(cursor, start - 1, scope))
                segs.extend(new)
            cursor = end + 1
        if cursor <= hi:
            segs.append(self._gap(cursor, hi, scope))
        return segs

    def _continues(
        self, segs: list[_Seg], new: list[_Seg], cursor: int, start: int, end: int
    ) -> bool:
        """Whether ``new`` is one more clause of the function that ends ``segs``
        (``merge_clauses``): same symbol and kind, nothing but blank lines between, and
        the clauses together still fit one chunk (else each clause stays whole)."""
        if not (self.spec.merge_clauses and segs and len(new) == 1):
            return False
        last, seg = segs[-1], new[0]
        return (
            not last.gap
            and not seg.gap
            and bool(seg.symbol)
            and (last.symbol, last.kind) == (seg.symbol, seg.kind)
            and last.end == cursor - 1
            and self._trim(cursor, start - 1) is None
            and self._fits(last.start, end)
        )

    def _gap(self, start: int, end: int, scope: Scope) -> _Seg:
        return _Seg(start, end, scope.gap_symbol, scope.gap_kind, gap=True)

    def _attach_leading(self, start: int, leading: list[Node], cursor: int) -> int:
        """Move ``start`` up over the comments/attributes that sit directly above."""
        for node in reversed(leading):
            if self._end_line(node) < start - 1:
                break  # separated by a blank line: not this definition's comment
            node_start = self._line(node.start_byte)
            if node_start < cursor or not self._starts_line(node):
                break  # a trailing comment of the previous code, not a leading one
            start = min(start, node_start)
        return start

    def _trailing_leading(self, node: Node) -> list[Node]:
        """Comments that a grammar nested at the end of a statement (tree-sitter-kotlin
        puts the comment above a class inside the preceding ``import_list``)."""
        leading_types = self.spec.leading
        for _ in range(4):  # a few levels are enough; deeper means a real body
            count = node.named_child_count
            if not count:
                return []
            found: list[Node] = []
            i = count - 1
            while i >= 0 and self.definitions.key(c := node.named_child(i)) in leading_types:
                found.append(c)
                i -= 1
            if found:
                found.reverse()
                return found
            node = node.named_child(count - 1)
        return []

    def _definition(
        self, d: Definition, start: int, end: int, scope: Scope, leading: Sequence[Node] = ()
    ) -> list[_Seg]:
        if d.role == "namespace":
            assert d.members is not None
            return self._partition(d.members, start, end, scope, leading)
        symbol = f"{scope.prefix}.{d.name}" if scope.prefix and d.name else d.name or scope.prefix
        if d.role == "function" or d.members is None or self._fits(start, end):
            return [_Seg(start, end, symbol, d.kind, gap=False)]
        inner = Scope(prefix=symbol, in_class=True, gap_symbol=symbol, gap_kind=d.kind)
        return self._partition(d.members, start, end, inner)

    # ---- sizing and output ----
    def _trim(self, start: int, end: int) -> tuple[int, int] | None:
        lines = self.lines
        while start <= end and is_blank(lines[start - 1]):
            start += 1
        while end >= start and is_blank(lines[end - 1]):
            end -= 1
        return (start, end) if start <= end else None

    def _fits(self, start: int, end: int) -> bool:
        """Whether lines ``start..end`` (blank edges trimmed) make one valid chunk."""
        trimmed = self._trim(start, end)
        if trimmed is None:
            return True
        s, e = trimmed
        # Cheap checks first: a huge or minified definition never reaches the counter.
        if e - s + 1 > self.max_lines:
            return False
        if self.prefix_chars[e] - self.prefix_chars[s - 1] + (e - s) > self.max_chars:
            return False
        span = self.lines[s - 1 : e]
        if max(map(len, span)) > self.line_limit:
            return False
        return self.count("\n".join(span)) <= self.budget

    def _merge_closers(self, segs: list[_Seg]) -> list[_Seg]:
        """Glue gaps made only of closers (``}``, ``end``) to a neighbour that still fits
        (or that is split into windows anyway), so they are not chunks of their own."""
        out: list[_Seg] = []
        carry: _Seg | None = None
        for seg in segs:
            if self._trim(seg.start, seg.end) is None:
                continue  # blank lines only: emits nothing, so never a merge partner
            if carry is not None:
                if self._fits(carry.start, seg.end):
                    seg.start = carry.start
                else:
                    out.append(carry)
                carry = None
            if seg.gap and self._is_closers(seg):
                prev = out[-1] if out else None
                if prev is not None and (
                    self._fits(prev.start, seg.end) or not self._fits(prev.start, prev.end)
                ):
                    prev.end = seg.end
                else:
                    carry = seg
                continue
            out.append(seg)
        if carry is not None:
            out.append(carry)
        return out

    def _is_closers(self, seg: _Seg) -> bool:
        span = self.lines[seg.start - 1 : seg.end]
        if len(span) > self.max_lines:
            return False
        return all(_CLOSER_LINE.fullmatch(line.strip()) for line in span)

    def _emit(self, seg: _Seg) -> Iterator[Chunk]:
        trimmed = self._trim(seg.start, seg.end)
        if trimmed is None:
            return
        s, e = trimmed
        if self._fits(s, e):
            yield Chunk(
                path=self.path,
                start_line=s,
                end_line=e,
                text="\n".join(self.lines[s - 1 : e]),
                language=self.language,
                symbol=seg.symbol,
                kind=seg.kind,
            )
            return
        windower = LineWindower(
            self.path,
            self.language,
            self.settings,
            self.count_tokens,
            symbol=seg.symbol,
            kind=seg.kind,
        )
        for number in range(s, e + 1):
            yield from windower.add_line(number, self.lines[number - 1])
        yield from windower.flush()
