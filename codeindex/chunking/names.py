"""Symbol names: what a definition found by the syntax chunker is called.

:func:`symbol_name` turns a tree-sitter definition node into the name a chunk carries as
its ``symbol`` (``A.f`` for a method ``f`` of class ``A`` is assembled by the chunker from
the enclosing scope). Per-language rules live here — Elixir macro calls, Lua ``M:f``,
Haskell equations and instances, Zig declarations and tests, C/C++ declarators, C#
operators — so the chunker itself deals only in lines and segments. Names are cleaned
(:func:`clean_name`) and capped at ``_MAX_NAME_CHARS``: error recovery can make an
"identifier" node span a whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Node = Any  # tree_sitter.Node (kept loose: the binding's stubs vary across versions)

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
# Names come from identifier nodes and are short; error recovery can make them huge.
_MAX_NAME_CHARS = 200
_GENERIC_ARGS = re.compile(r"<[^<>]*>|\[[^\[\]]*\]")


def symbol_name(language: str, node: Node) -> str:
    """The display name of the definition ``node`` in ``language`` ("" when it has
    none): the language's own rule first (see ``_NAME_HOOKS``), then C/C++ declarators,
    C# destructors and operators, then the ``name``/``property`` field or the first
    identifier-like child, cleaned by :func:`clean_name`."""
    hook = _NAME_HOOKS.get(language)
    if hook is not None:
        name = hook(node)
        if name is not None:
            return name
    if language in ("c", "cpp") and node.type == "function_definition":
        return _c_function_name(node)
    if node.type == "destructor_declaration":  # C#: `~A()`
        found = node.child_by_field_name("name")
        return f"~{node_text(found)}" if found is not None else "~"
    if node.type == "operator_declaration":  # C#: `A operator +(A a, A b)`
        op = node.child_by_field_name("operator")
        return f"operator{node_text(op)}" if op is not None else "operator"
    if node.type == "conversion_operator_declaration":  # C#: `implicit operator int`
        target = node.child_by_field_name("type")
        return f"operator {node_text(target)}" if target is not None else "operator"
    found = node.child_by_field_name("name") or node.child_by_field_name("property")
    if found is None:
        found = next((c for c in node.named_children if c.type in _NAME_TYPES), None)
    return clean_name(node_text(found)) if found is not None else ""


def _elixir_name(node: Node) -> str | None:
    """`defmodule A.B` → "A.B"; `defimpl P, for: T` → "P.T" (the module it defines);
    `def name(args) when guard` / `def name, do: ...` → "name"; `def a + b` → "+"."""
    if node.type != "call":
        return None
    args = next((c for c in node.named_children if c.type == "arguments"), None)
    if args is None or not args.named_child_count:
        return ""
    head = args.named_child(0)
    target = node.child_by_field_name("target")
    if target is not None and node_text(target) in ("defmodule", "defprotocol", "defimpl"):
        if head.type != "alias":
            return ""  # `defmodule unquote(name)`: no static name
        name = clean_name(node_text(head))
        for c in args.named_children:
            for_type = _elixir_keyword(c, "for") if c.type == "keywords" else None
            if for_type is not None and for_type.type == "alias":
                name = f"{name}.{clean_name(node_text(for_type))}"
        return name
    while head.type == "binary_operator":
        operator = head.child_by_field_name("operator")
        left = head.child_by_field_name("left")
        op = node_text(operator) if operator is not None else ""
        if op not in ("when", "\\\\") or left is None:
            return op  # an operator definition: `def left <> right`
        head = left  # `def f(x) when guard` / `def f(x) \\ default`
    if head.type == "call":
        head = head.child_by_field_name("target") or head
    return clean_name(node_text(head)) if head.type == "identifier" else ""


def _lua_name(node: Node) -> str | None:
    if node.type != "function_declaration":
        return None
    found = node.child_by_field_name("name")
    return clean_name(node_text(found).replace(":", ".")) if found is not None else ""  # M:f


def _haskell_name(node: Node) -> str | None:
    if node.type == "instance":
        # Named after the instance's type, like a Rust impl: `instance Show (T a)`
        # → "T"; the class when the type has no constructor name (`Show [a]`).
        patterns = node.child_by_field_name("patterns")
        found = _first_of_type(patterns, "name") if patterns is not None else None
        if found is None:
            found = node.child_by_field_name("name")
        return clean_name(node_text(found)) if found is not None else ""
    if node.type not in ("function", "bind"):
        return None
    found = node.child_by_field_name("name")
    if found is None:  # infix definition: x <+> y = ... / x `op` y = ...
        infix = next((c for c in node.named_children if c.type == "infix"), None)
        found = infix.child_by_field_name("operator") if infix is not None else None
    if found is None:
        return ""
    # Not _clean: it would read an operator such as `<+>` as generic arguments.
    return "".join(node_text(found).split()).strip("()`")[:_MAX_NAME_CHARS]


def _zig_name(node: Node) -> str | None:
    if node.type in ("FnProto", "VarDecl"):
        field_name = "function" if node.type == "FnProto" else "variable_type_function"
        found = node.child_by_field_name(field_name)
        return clean_name(node_text(found)) if found is not None else ""
    if node.type != "TestDecl":
        return None
    # `test "does a thing" {}` → "does a thing"; `test name {}` → "name".
    for child in node.named_children:
        if child.type in ("STRINGLITERALSINGLE", "IDENTIFIER"):
            return " ".join(node_text(child).strip('"').split())[:_MAX_NAME_CHARS]
    return ""


# Languages whose definitions are named by a rule of their own. A hook returns None for
# node types it does not know, so the generic rules in symbol_name apply to them.
_NAME_HOOKS: dict[str, Callable[[Node], str | None]] = {
    "elixir": _elixir_name,
    "lua": _lua_name,
    "haskell": _haskell_name,
    "zig": _zig_name,
}


def _c_function_name(node: Node) -> str:
    d = node.child_by_field_name("declarator")
    while d is not None and d.type not in _C_DECLARATOR_ENDS:
        nxt = d.child_by_field_name("declarator")
        if nxt is None and d.named_child_count:
            nxt = d.named_children[-1]  # reference/parenthesized declarators
        d = nxt
    return clean_name(node_text(d)) if d is not None else ""


def go_receiver(node: Node) -> str:
    """The receiver type of a Go ``method_declaration`` (``func (s *Server) f()`` →
    "Server"), or "" when it has none."""
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for param in receiver.named_children:
        type_node = param.child_by_field_name("type")
        if type_node is not None:
            return clean_name(node_text(type_node))
    return ""


def _elixir_keyword(keywords: Node, key: str) -> Node | None:
    """The value of ``key:`` in an Elixir keyword list (``for: Type``), if present."""
    for pair in keywords.named_children:
        found = pair.child_by_field_name("key")
        if found is not None and node_text(found).rstrip().rstrip(":") == key:
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


def node_text(node: Node) -> str:
    """The source text of ``node``; bytes that are not UTF-8 become U+FFFD."""
    return node.text.decode("utf-8", errors="replace")


def clean_name(name: str) -> str:
    """A display name: `ns::A<T>::f` → `ns.A.f`, `*Box[T]` → `Box`, whitespace dropped."""
    previous = None
    while previous != name:  # strip nested generic arguments from the inside out
        previous = name
        name = _GENERIC_ARGS.sub("", name)
    name = name.replace("::", ".").replace("\\", ".")
    name = "".join(ch for ch in name if not ch.isspace() and ch not in "*&").strip(".")
    return name[:_MAX_NAME_CHARS]
