"""Definitions: which tree-sitter nodes the syntax chunker cuts at, and what they are.

:class:`DefinitionFinder` answers, for one node of one language: is this a definition,
and if so a function, a class-like container or a transparent namespace; what kind
and name; which children are its members? The node-type tables are in
:mod:`codeindex.chunking.specs`; the rules the tables cannot express (JavaScript
``const f = () => ...``, Lua ``M.f = function``, Zig ``const X = struct {}``, C
typedefs, Go type blocks, Rust impls, Kotlin/Swift declaration kinds) are here, names
in :mod:`codeindex.chunking.names`. The chunker (:mod:`codeindex.chunking.syntax`)
lays the answers out as line segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codeindex.chunking.names import Node, clean_name, go_receiver, node_text, symbol_name
from codeindex.chunking.specs import LanguageSpec

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
# A keyed node (LanguageSpec.keyed) whose qualifying field is longer is not a definition.
_MAX_KEY_BYTES = 64


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a node sits: at the top level, or inside a class-like definition whose
    qualified name prefixes its members' names and names the gaps between them."""

    prefix: str = ""  # qualified name of the enclosing class-like definition
    in_class: bool = False
    gap_symbol: str = ""
    gap_kind: str = "lines"


@dataclass(slots=True)
class Definition:
    """A node the chunker cuts at. ``role`` decides what the chunker does with it: a
    "function" is a leaf, a "class" may be split open into ``members``, a
    "namespace" is never a chunk of its own (its ``members`` are chunked instead)."""

    role: str  # "function" | "class" | "namespace"
    kind: str
    name: str
    members: Sequence[Node] | None  # children to partition when split open


class DefinitionFinder:
    """Classifies the tree-sitter nodes of one language (``spec`` is its entry in
    ``SPECS``). Holds no per-file state, so one finder serves a whole file. A node it
    cannot make sense of (error recovery, unusual shapes) is "not a definition": None,
    never an exception of its own."""

    def __init__(self, language: str, spec: LanguageSpec) -> None:
        self.language = language
        self.spec = spec

    def key(self, node: Node) -> str:
        """The node's key in the spec tables: its type, or "type:text" for keyed types."""
        field_name = self.spec.keyed.get(node.type)
        if field_name is None:
            return node.type
        qualifier = node.child_by_field_name(field_name)
        if qualifier is None or qualifier.end_byte - qualifier.start_byte > _MAX_KEY_BYTES:
            return node.type
        return f"{node.type}:{node_text(qualifier)}"

    def classify(self, node: Node, scope: Scope) -> Definition | None:
        """What ``node`` defines within ``scope``, or None when it is not a definition."""
        spec = self.spec
        t = self.key(node)
        if t in spec.wrappers:
            return self._unwrap(node, scope)
        if t in spec.namespaces or t == "ERROR":
            members = self._namespace_members(node)
            if members is None:
                return None
            return Definition("namespace", "namespace", "", members)
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
            return Definition("function", kind, name, None)
        if t in spec.classes:
            return self._class_def(node, spec.classes[t])
        if self.language in _JS_FAMILY:
            return self._js_def(node, scope)
        if self.language == "lua":
            return self._lua_def(node, scope)
        if self.language == "zig":
            return self._zig_def(node, scope)
        return None

    def _unwrap(self, node: Node, scope: Scope) -> Definition | None:
        for child in node.named_children:
            if child.type in self.spec.leading:
                continue
            d = self.classify(child, scope)
            if d is not None:
                return d
        if self.language in _JS_FAMILY:
            # `export default function () {}` / `export default class {}`
            value = node.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                return Definition("function", "function", self._name(value) or "default", None)
            if value is not None and value.type in _CLASS_VALUES:
                body = value.child_by_field_name("body")
                members = body.children if body is not None else None
                return Definition("class", "class", self._name(value) or "default", members)
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

    def _class_def(self, node: Node, kind: str) -> Definition | None:
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
                return Definition("class", kind, name, body.children if body is not None else None)
            if body is None:
                return None  # a forward declaration `struct x;`
        elif lang == "go":
            specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
            if len(specs) != 1:
                return Definition("class", "type", "", None)
            type_node = specs[0].child_by_field_name("type")
            if type_node is not None and type_node.type == "struct_type":
                kind = "struct"
            elif type_node is not None and type_node.type == "interface_type":
                kind = "interface"
            name_node = specs[0]
        elif lang == "rust" and t == "impl_item":
            type_node = node.child_by_field_name("type")
            name = clean_name(node_text(type_node)) if type_node is not None else ""
            return Definition("class", kind, name, body.children if body is not None else None)
        elif lang == "swift" and t == "class_declaration":
            declared = node.child_by_field_name("declaration_kind")
            if declared is not None:
                kind = node_text(declared)
        elif lang == "kotlin":
            kind = self._kotlin_kind(node, kind)
        if body is None and self.spec.bodies:
            body = next((c for c in node.named_children if c.type in self.spec.bodies), None)
        members = body.children if body is not None else None
        return Definition("class", kind, self._name(name_node), members)

    def _kotlin_kind(self, node: Node, kind: str) -> str:
        for child in node.children:
            if child.type in ("interface", "enum"):  # `interface X`, `enum class X`
                return child.type
            if child.type == "modifiers" and b"enum" in child.text.split():
                return "enum"
        return kind

    def _js_def(self, node: Node, scope: Scope) -> Definition | None:
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
                return Definition(
                    "function", "method" if scope.in_class else "function", name, None
                )
            if value is not None and value.type in _CLASS_VALUES:
                body = value.child_by_field_name("body")
                return Definition(
                    "class", "class", name, body.children if body is not None else None
                )
            return None
        if t in ("field_definition", "public_field_definition"):
            # Class fields holding functions (`handle = () => {...}`) are methods.
            value = node.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES:
                return Definition("function", "method", self._name(node), None)
        return None

    def _lua_def(self, node: Node, scope: Scope) -> Definition | None:
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
        return Definition("function", kind, clean_name(node_text(targets.named_child(0))), None)

    def _zig_def(self, node: Node, scope: Scope) -> Definition | None:
        """A `Decl` is a definition when it holds a function (`FnProto`, with or without
        a body) or binds a container type: `const X = struct/enum/union/opaque {...}`."""
        if node.type != "Decl":
            return None
        for child in node.named_children:
            if child.type == "FnProto":
                kind = "method" if scope.in_class else "function"
                return Definition("function", kind, self._name(child), None)
            if child.type == "VarDecl":
                container = _zig_container(child)
                if container is None:
                    return None
                decl_type = next(
                    (c for c in container.children if c.type == "ContainerDeclType"), None
                )
                kind = decl_type.children[0].type if decl_type and decl_type.children else ""
                return Definition("class", kind or "struct", self._name(child), container.children)
        return None

    def _name(self, node: Node) -> str:
        return symbol_name(self.language, node)


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
