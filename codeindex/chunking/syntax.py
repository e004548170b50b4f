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
from codeindex.chunking.specs import SPECS, LanguageSpec
from codeindex.chunking.tokens import TokenCounter, heuristic_token_count, token_budget
from codeindex.config import Settings
from codeindex.types import Chunk

log = logging.getLogger(__name__)

Node = Any  # tree_sitter.Node (kept loose: the binding's stubs vary across versions)

_JS_FAMILY = frozenset({"javascript", "typescript", "tsx"})
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_CLASS_VALUES = frozenset({"class", "class_expression"})
_NAME_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "constant",
        "simple_identifier",
        "name",
        "property_identifier",
        "private_property_identifier",
        "field_identifier",
        "word",
        "namespace_identifier",
    }
)
_C_DECLARATOR_ENDS = frozenset(
    {
        "identifier",
        "field_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "type_identifier",
        "template_function",
    }
)
_C_TYPEDEF_KINDS = {
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "class_specifier": "class",
}
# Gap content too small to be worth a chunk of its own: closing brackets and block
# terminators ("}", "};", "end", "fi", ...). It is glued to a neighbouring segment.
_CLOSER_LINE = re.compile(r"[\W_]*(?:end|fi|done|esac)?[\W_]*")
# Names come from identifier nodes and are short; error recovery can make them huge.
_MAX_NAME_CHARS = 200
# A keyed node (LanguageSpec.keyed) whose qualifying field is longer is not a definition.
_MAX_KEY_BYTES = 64
_GENERIC_ARGS = re.compile(r"<[^<>]*>|\[[^\[\]]*\]")

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
        return f"{node.type}:{_text(qualifier)}"

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
                receiver = self._go_receiver(node)
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
                name = _clean(_text(declarator)) if declarator is not None else ""
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
            name = _clean(_text(type_node)) if type_node is not None else ""
            return _Def("class", kind, name, body.children if body is not None else None)
        elif lang == "swift" and t == "class_declaration":
            declared = node.child_by_field_name("declaration_kind")
            if declared is not None:
                kind = _text(declared)
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
        return _Def("function", kind, _clean(_text(targets.named_child(0))), None)

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

    # ---- names ----
    def _name(self, node: Node) -> str:
        if self.language in _NAME_HOOKS:
            name = _NAME_HOOKS[self.language](self, node)
            if name is not None:
                return name
        if self.language in ("c", "cpp") and node.type == "function_definition":
            return self._c_function_name(node)
        if node.type == "destructor_declaration":  # C#: `~A()`
            found = node.child_by_field_name("name")
            return f"~{_text(found)}" if found is not None else "~"
        if node.type == "operator_declaration":  # C#: `A operator +(A a, A b)`
            op = node.child_by_field_name("operator")
            return f"operator{_text(op)}" if op is not None else "operator"
        if node.type == "conversion_operator_declaration":  # C#: `implicit operator int`
            target = node.child_by_field_name("type")
            return f"operator {_text(target)}" if target is not None else "operator"
        found = node.child_by_field_name("name") or node.child_by_field_name("property")
        if found is None:
            found = next((c for c in node.named_children if c.type in _NAME_TYPES), None)
        return _clean(_text(found)) if found is not None else ""

    def _elixir_name(self, node: Node) -> str | None:
        """`defmodule A.B` → "A.B"; `defimpl P, for: T` → "P.T" (the module it defines);
        `def name(args) when guard` / `def name, do: ...` → "name"; `def a + b` → "+"."""
        if node.type != "call":
            return None
        args = next((c for c in node.named_children if c.type == "arguments"), None)
        if args is None or not args.named_child_count:
            return ""
        head = args.named_child(0)
        target = node.child_by_field_name("target")
        if target is not None and _text(target) in ("defmodule", "defprotocol", "defimpl"):
            if head.type != "alias":
                return ""  # `defmodule unquote(name)`: no static name
            name = _clean(_text(head))
            for c in args.named_children:
                for_type = _elixir_keyword(c, "for") if c.type == "keywords" else None
                if for_type is not None and for_type.type == "alias":
                    name = f"{name}.{_clean(_text(for_type))}"
            return name
        while head.type == "binary_operator":
            operator = head.child_by_field_name("operator")
            left = head.child_by_field_name("left")
            op = _text(operator) if operator is not None else ""
            if op not in ("when", "\\\\") or left is None:
                return op  # an operator definition: `def left <> right`
            head = left  # `def f(x) when guard` / `def f(x) \\ default`
        if head.type == "call":
            head = head.child_by_field_name("target") or head
        return _clean(_text(head)) if head.type == "identifier" else ""

    def _lua_name(self, node: Node) -> str | None:
        if node.type != "function_declaration":
            return None
        found = node.child_by_field_name("name")
        return _clean(_text(found).replace(":", ".")) if found is not None else ""  # M:f

    def _haskell_name(self, node: Node) -> str | None:
        if node.type == "instance":
            # Named after the instance's type, like a Rust impl: `instance Show (T a)`
            # → "T"; the class when the type has no constructor name (`Show [a]`).
            patterns = node.child_by_field_name("patterns")
            found = _first_of_type(patterns, "name") if patterns is not None else None
            if found is None:
                found = node.child_by_field_name("name")
            return _clean(_text(found)) if found is not None else ""
        if node.type not in ("function", "bind"):
            return None
        found = node.child_by_field_name("name")
        if found is None:  # infix definition: x <+> y = ... / x `op` y = ...
            infix = next((c for c in node.named_children if c.type == "infix"), None)
            found = infix.child_by_field_name("operator") if infix is not None else None
        if found is None:
            return ""
        # Not _clean: it would read an operator such as `<+>` as generic arguments.
        return "".join(_text(found).split()).strip("()`")[:_MAX_NAME_CHARS]

    def _zig_name(self, node: Node) -> str | None:
        if node.type in ("FnProto", "VarDecl"):
            field_name = "function" if node.type == "FnProto" else "variable_type_function"
            found = node.child_by_field_name(field_name)
            return _clean(_text(found)) if found is not None else ""
        if node.type != "TestDecl":
            return None
        # `test "does a thing" {}` → "does a thing"; `test name {}` → "name".
        for child in node.named_children:
            if child.type in ("STRINGLITERALSINGLE", "IDENTIFIER"):
                return " ".join(_text(child).strip('"').split())[:_MAX_NAME_CHARS]
        return ""

    def _c_function_name(self, node: Node) -> str:
        d = node.child_by_field_name("declarator")
        while d is not None and d.type not in _C_DECLARATOR_ENDS:
            nxt = d.child_by_field_name("declarator")
            if nxt is None and d.named_child_count:
                nxt = d.named_children[-1]  # reference/parenthesized declarators
            d = nxt
        return _clean(_text(d)) if d is not None else ""

    def _go_receiver(self, node: Node) -> str:
        receiver = node.child_by_field_name("receiver")
        if receiver is None:
            return ""
        for param in receiver.named_children:
            type_node = param.child_by_field_name("type")
            if type_node is not None:
                return _clean(_text(type_node))
        return ""

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


_NAME_HOOKS = {
    "elixir": _SyntaxChunker._elixir_name,
    "lua": _SyntaxChunker._lua_name,
    "haskell": _SyntaxChunker._haskell_name,
    "zig": _SyntaxChunker._zig_name,
}


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


def _elixir_keyword(keywords: Node, key: str) -> Node | None:
    """The value of ``key:`` in an Elixir keyword list (``for: Type``), if present."""
    for pair in keywords.named_children:
        found = pair.child_by_field_name("key")
        if found is not None and _text(found).rstrip().rstrip(":") == key:
            return pair.child_by_field_name("value")
    return None


def _first_of_type(node: Node, node_type: str) -> Node | None:
    """The first descendant of ``node`` (pre-order) with type ``node_type``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == node_type:
            return current
        stack.extend(reversed(current.named_children))
    return None


def _text(node: Node) -> str:
    return node.text.decode("utf-8", errors="replace")


def _clean(name: str) -> str:
    """A display name: `ns::A<T>::f` → `ns.A.f`, `*Box[T]` → `Box`, whitespace dropped."""
    previous = None
    while previous != name:  # strip nested generic arguments from the inside out
        previous = name
        name = _GENERIC_ARGS.sub("", name)
    name = name.replace("::", ".").replace("\\", ".")
    name = "".join(ch for ch in name if not ch.isspace() and ch not in "*&").strip(".")
    return name[:_MAX_NAME_CHARS]
