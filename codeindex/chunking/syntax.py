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
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from codeindex.chunking.lines import LineWindower, is_blank, iter_lines
from codeindex.chunking.names import Node, clean_name, go_receiver, node_text, symbol_name
from codeindex.chunking.specs import SPECS, LanguageSpec
from codeindex.chunking.tokens import TokenCounter, heuristic_token_count, token_budget
from codeindex.config import Settings
from codeindex.types import Chunk

log = logging.getLogger(__name__)

_JS_FAMILY = frozenset({"javascript", "typescript", "tsx"})
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_CLASS_VALUES = frozenset({"class", "class_expression"})
_C_TYPEDEF_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "class_specifier": "class",
}
# Gap content too small to be worth a chunk of its own: closing brackets and block
# terminators ("}", "};", "end", "fi", ...). It is glued to a neighbouring segment.
_CLOSER_LINE = re.compile(r"[\W_]*(?:end|fi|done|esac)?[\W_]*")
# A keyed node (LanguageSpec.keyed) whose qualifying field is longer is not a definition.
_MAX_KEY_BYTES = 64

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


@dataclass(frozen=True, slots=True)
class _Scope:
    prefix: str = ""  # qualified name of the enclosing class-like definition
    in_class: bool = False
    gap_symbol: str = ""
    gap_kind: str = "lines"


@dataclass(slots=True)
class _Def:
    role: str  # "function" | "class" | "namespace"
    kind: str
    name: str
    members: Sequence[Node] | None  # children to partition when split open


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
        segs = self._partition(root.children, 1, len(self.lines), _Scope())
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
        scope: _Scope,
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
            d = self._classify(child, scope)
            if d is None:
                if self._key(child) in self.spec.leading:
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

    def _gap(self, start: int, end: int, scope: _Scope) -> _Seg:
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
            while i >= 0 and self._key(c := node.named_child(i)) in leading_types:
                found.append(c)
                i -= 1
            if found:
                found.reverse()
                return found
            node = node.named_child(count - 1)
        return []

    def _definition(
        self, d: _Def, start: int, end: int, scope: _Scope, leading: Sequence[Node] = ()
    ) -> list[_Seg]:
        if d.role == "namespace":
            assert d.members is not None
            return self._partition(d.members, start, end, scope, leading)
        symbol = f"{scope.prefix}.{d.name}" if scope.prefix and d.name else d.name or scope.prefix
        if d.role == "function" or d.members is None or self._fits(start, end):
            return [_Seg(start, end, symbol, d.kind, gap=False)]
        inner = _Scope(prefix=symbol, in_class=True, gap_symbol=symbol, gap_kind=d.kind)
        return self._partition(d.members, start, end, inner)

    # ---- classification ----
    def _key(self, node: Node) -> str:
        """The node's key in the spec tables: its type, or "type:text" for keyed types."""
        field_name = self.spec.keyed.get(node.type)
        if field_name is None:
            return node.type
        qualifier = node.child_by_field_name(field_name)
        if qualifier is None or qualifier.end_byte - qualifier.start_byte > _MAX_KEY_BYTES:
            return node.type
        return f"{node.type}:{node_text(qualifier)}"

    def _classify(self, node: Node, scope: _Scope) -> _Def | None:
        spec = self.spec
        t = self._key(node)
        if t in spec.wrappers:
            return self._unwrap(node, scope)
        if t in spec.namespaces or t == "ERROR":
            members = self._namespace_members(node)
            if members is None:
                return None
            return _Def("namespace", "namespace", "", members)
        if t in spec.functions:
            kind = spec.functions[t]
            if kind == "function" and scope.in_class:
                kind = "method"
            name = self._name(node)
            if self.language == "go" and t == "method_declaration":
                receiver = go_receiver(node)
                name = f"{receiver}.{name}" if receiver else name
            elif self.language in ("c", "cpp") and "." in name:
                kind = "method"  # out-of-line member definition `A::f`
            return _Def("function", kind, name, None)
        if t in spec.classes:
            return self._class_def(node, spec.classes[t])
        if self.language in _JS_FAMILY:
            return self._js_def(node, scope)
        if self.language == "lua":
            return self._lua_def(node, scope)
        if self.language == "zig":
            return self._zig_def(node, scope)
        return None

    def _unwrap(self, node: Node, scope: _Scope) -> _Def | None:
        for child in node.named_children:
            if child.type in self.spec.leading:
                continue
            d = self._classify(child, scope)
            if d is not None:
                return d
        if self.language in _JS_FAMILY:
            # `export default function () {}` / `export default class {}`
            value = node.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                return _Def("function", "function", self._name(value) or "default", None)
            if value is not None and value.type in _CLASS_VALUES:
                body = value.child_by_field_name("body")
                members = body.children if body is not None else None
                return _Def("class", "class", self._name(value) or "default", members)
        return None

    def _namespace_members(self, node: Node) -> Sequence[Node] | None:
        body = node.child_by_field_name("body")
        if body is not None:
            return body.children
        if node.type == "ERROR" or node.type.startswith("preproc_"):
            return node.children  # members are direct children
        if node.type in self.spec.bodies:
            return node.children  # a namespace that is its own body
        return None  # `mod x;`, `namespace A;`, `package a`: a plain statement

    def _class_def(self, node: Node, kind: str) -> _Def | None:
        t = node.type
        lang = self.language
        body = node.child_by_field_name("body")
        name_node = node
        if lang in ("c", "cpp"):
            if t == "type_definition":
                inner = node.child_by_field_name("type")
                if inner is None or inner.child_by_field_name("body") is None:
                    return None  # `typedef int x;` is a statement, not a definition
                kind = _C_TYPEDEF_KINDS.get(inner.type, "type")
                body = inner.child_by_field_name("body")
                declarator = node.child_by_field_name("declarator")
                name = clean_name(node_text(declarator)) if declarator is not None else ""
                return _Def("class", kind, name, body.children if body is not None else None)
            if body is None:
                return None  # a forward declaration `struct x;`
        elif lang == "go":
            specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
            if len(specs) != 1:
                return _Def("class", "type", "", None)
            type_node = specs[0].child_by_field_name("type")
            if type_node is not None and type_node.type == "struct_type":
                kind = "struct"
            elif type_node is not None and type_node.type == "interface_type":
                kind = "interface"
            name_node = specs[0]
        elif lang == "rust" and t == "impl_item":
            type_node = node.child_by_field_name("type")
            name = clean_name(node_text(type_node)) if type_node is not None else ""
            return _Def("class", kind, name, body.children if body is not None else None)
        elif lang == "swift" and t == "class_declaration":
            declared = node.child_by_field_name("declaration_kind")
            if declared is not None:
                kind = node_text(declared)
        elif lang == "kotlin":
            kind = self._kotlin_kind(node, kind)
        if body is None and self.spec.bodies:
            body = next((c for c in node.named_children if c.type in self.spec.bodies), None)
        members = body.children if body is not None else None
        return _Def("class", kind, self._name(name_node), members)

    def _kotlin_kind(self, node: Node, kind: str) -> str:
        for child in node.children:
            if child.type in ("interface", "enum"):  # `interface X`, `enum class X`
                return child.type
            if child.type == "modifiers" and b"enum" in child.text.split():
                return "enum"
        return kind

    def _js_def(self, node: Node, scope: _Scope) -> _Def | None:
        t = node.type
        if t in ("lexical_declaration", "variable_declaration"):
            # `const f = () => ...` / `const A = class {...}`: one declarator only, or
            # the statement is data, not a definition.
            declarators = [c for c in node.named_children if c.type == "variable_declarator"]
            if len(declarators) != 1:
                return None
            value = declarators[0].child_by_field_name("value")
            name = self._name(declarators[0])
            if value is not None and value.type in _FUNCTION_VALUES:
                return _Def("function", "method" if scope.in_class else "function", name, None)
            if value is not None and value.type in _CLASS_VALUES:
                body = value.child_by_field_name("body")
                return _Def("class", "class", name, body.children if body is not None else None)
            return None
        if t in ("field_definition", "public_field_definition"):
            # Class fields holding functions (`handle = () => {...}`) are methods.
            value = node.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                return _Def("function", "method", self._name(node), None)
        return None

    def _lua_def(self, node: Node, scope: _Scope) -> _Def | None:
        """`local f = function ... end` / `M.f = function ... end`: one name, one value."""
        if node.type == "variable_declaration":
            node = next((c for c in node.named_children if c.type == "assignment_statement"), None)
        if node is None or node.type != "assignment_statement":
            return None
        targets = next((c for c in node.named_children if c.type == "variable_list"), None)
        values = next((c for c in node.named_children if c.type == "expression_list"), None)
        if targets is None or values is None:
            return None
        if targets.named_child_count != 1 or values.named_child_count != 1:
            return None
        if values.named_child(0).type != "function_definition":
            return None
        kind = "method" if scope.in_class else "function"
        return _Def("function", kind, clean_name(node_text(targets.named_child(0))), None)

    def _zig_def(self, node: Node, scope: _Scope) -> _Def | None:
        """A `Decl` is a definition when it holds a function (`FnProto`, with or without
        a body) or binds a container type: `const X = struct/enum/union/opaque {...}`."""
        if node.type != "Decl":
            return None
        for child in node.named_children:
            if child.type == "FnProto":
                kind = "method" if scope.in_class else "function"
                return _Def("function", kind, self._name(child), None)
            if child.type == "VarDecl":
                container = _zig_container(child)
                if container is None:
                    return None
                decl_type = next(
                    (c for c in container.children if c.type == "ContainerDeclType"), None
                )
                kind = decl_type.children[0].type if decl_type and decl_type.children else ""
                return _Def("class", kind or "struct", self._name(child), container.children)
        return None

    def _name(self, node: Node) -> str:
        return symbol_name(self.language, node)

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


def _zig_container(var_decl: Node) -> Node | None:
    """The `ContainerDecl` a Zig `VarDecl` binds directly (`= struct {...}`), if any."""
    count = var_decl.named_child_count
    value = var_decl.named_child(count - 1) if count else None  # after any `: type`
    if value is None or value.type != "ErrorUnionExpr":
        return None
    for expected in ("SuffixExpr", "ContainerDecl"):
        if value.named_child_count != 1:
            return None  # `Foo.bar()`, `a orelse b`: an expression, not a container
        value = value.named_child(0)
        if value.type != expected:
            return None
    return value
