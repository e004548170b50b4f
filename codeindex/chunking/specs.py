"""Per-language tree-sitter node-type tables for the syntax chunker. Pure data.

Roles:

* ``functions``: node type → kind. A leaf definition: one chunk when it fits, else line
  windows that keep its symbol. Inside a class-like scope the kind "function" becomes
  "method".
* ``classes``: node type → kind. A container: one chunk when it fits, else split into
  its member definitions plus line windows (symbol = the class) for the rest.
* ``namespaces``: transparent containers (namespace blocks, ``#ifdef`` blocks, error
  nodes): never a chunk of their own; their members are chunked as if at the outer level.
* ``wrappers``: nodes that wrap one definition (``export``, decorators, templates); the
  wrapper's range is chunked under the inner definition's name and role.
* ``leading``: sibling node types attached to the following definition when directly
  above it (comments, attributes, decorators).

Every table is looked up by node type, except for the types in ``keyed``: those are
looked up as ``"type:text"``, the text being that of the named field (tree-sitter-elixir
parses ``def``, ``defmodule`` and every other macro call as a ``call`` node, told apart
only by its target; ``@doc`` is a unary ``@`` operator).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LanguageSpec:
    functions: dict[str, str]
    classes: dict[str, str]
    namespaces: frozenset[str] = frozenset()
    wrappers: frozenset[str] = frozenset()
    leading: frozenset[str] = frozenset({"comment"})
    # Child node types that hold a container's members when it has no "body" field. A
    # namespace of one of these types is its own body (Haskell's top-level
    # `declarations`): its children are the members.
    bodies: frozenset[str] = field(default_factory=frozenset)
    # Node type → field whose text qualifies the type in the tables (see above).
    keyed: dict[str, str] = field(default_factory=dict)
    # Adjacent definitions with the same symbol and kind, only blank lines (or their
    # leading comments) between, are one definition: Haskell equations and Elixir
    # clauses of one function.
    merge_clauses: bool = False


# Error-recovery nodes are transparent everywhere: definitions inside still count.
COMMON_NAMESPACES = frozenset({"ERROR"})

_JS_FUNCTIONS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "method_definition": "method",
}
_JS_CLASSES = {"class_declaration": "class"}
_TS_CLASSES = {
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "type_alias_declaration": "type",
}
_TS_NAMESPACES = frozenset({"internal_module", "module"})
# expression_statement only ever unwraps to a definition (a TS `namespace X {}`).
_TS_WRAPPERS = frozenset({"export_statement", "ambient_declaration", "expression_statement"})

_C_FUNCTIONS = {"function_definition": "function"}
_C_CLASSES = {
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "type_definition": "type",
}
_C_NAMESPACES = frozenset(
    {"preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"}
)

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        functions={"function_definition": "function"},
        classes={"class_definition": "class"},
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": LanguageSpec(
        functions=_JS_FUNCTIONS,
        classes=_JS_CLASSES,
        wrappers=frozenset({"export_statement"}),
        leading=frozenset({"comment", "decorator"}),
    ),
    "typescript": LanguageSpec(
        functions=_JS_FUNCTIONS,
        classes=_TS_CLASSES,
        namespaces=_TS_NAMESPACES,
        wrappers=_TS_WRAPPERS,
        leading=frozenset({"comment", "decorator"}),
    ),
    "tsx": LanguageSpec(
        functions=_JS_FUNCTIONS,
        classes=_TS_CLASSES,
        namespaces=_TS_NAMESPACES,
        wrappers=_TS_WRAPPERS,
        leading=frozenset({"comment", "decorator"}),
    ),
    "go": LanguageSpec(
        functions={"function_declaration": "function", "method_declaration": "method"},
        classes={"type_declaration": "type"},
    ),
    "rust": LanguageSpec(
        functions={"function_item": "function", "macro_definition": "macro"},
        classes={
            "impl_item": "impl",
            "trait_item": "trait",
            "struct_item": "struct",
            "enum_item": "enum",
            "union_item": "union",
        },
        namespaces=frozenset({"mod_item"}),
        leading=frozenset({"line_comment", "block_comment", "attribute_item"}),
    ),
    "java": LanguageSpec(
        functions={
            "method_declaration": "method",
            "constructor_declaration": "method",
            "compact_constructor_declaration": "method",
        },
        classes={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "record",
            "annotation_type_declaration": "annotation",
        },
        leading=frozenset({"line_comment", "block_comment"}),
    ),
    "c": LanguageSpec(
        functions=_C_FUNCTIONS,
        classes=_C_CLASSES,
        namespaces=_C_NAMESPACES,
    ),
    "cpp": LanguageSpec(
        functions=_C_FUNCTIONS,
        classes={**_C_CLASSES, "class_specifier": "class"},
        namespaces=_C_NAMESPACES | {"namespace_definition", "linkage_specification"},
        wrappers=frozenset({"template_declaration"}),
    ),
    "csharp": LanguageSpec(
        functions={
            "method_declaration": "method",
            "constructor_declaration": "method",
            "destructor_declaration": "method",
            "operator_declaration": "method",
            "conversion_operator_declaration": "method",
            "local_function_statement": "function",
        },
        classes={
            "class_declaration": "class",
            "struct_declaration": "struct",
            "interface_declaration": "interface",
            "record_declaration": "record",
            "record_struct_declaration": "record",
            "enum_declaration": "enum",
        },
        namespaces=frozenset({"namespace_declaration"}),
    ),
    "ruby": LanguageSpec(
        functions={"method": "function", "singleton_method": "function"},
        classes={"class": "class", "module": "module"},
        # `class << self` holds class methods: chunk them as members of the class.
        namespaces=frozenset({"singleton_class"}),
    ),
    "php": LanguageSpec(
        functions={"function_definition": "function", "method_declaration": "method"},
        classes={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "trait_declaration": "trait",
            "enum_declaration": "enum",
        },
        namespaces=frozenset({"namespace_definition"}),
    ),
    "kotlin": LanguageSpec(
        functions={"function_declaration": "function"},
        classes={"class_declaration": "class", "object_declaration": "object"},
        namespaces=frozenset({"companion_object"}),
        leading=frozenset({"comment", "line_comment", "multiline_comment"}),
        bodies=frozenset({"class_body", "enum_class_body"}),
    ),
    "swift": LanguageSpec(
        functions={
            "function_declaration": "function",
            "init_declaration": "method",
            "deinit_declaration": "method",
        },
        classes={"class_declaration": "class", "protocol_declaration": "protocol"},
        leading=frozenset({"comment", "multiline_comment"}),
    ),
    "scala": LanguageSpec(
        functions={"function_definition": "function"},
        classes={
            "class_definition": "class",
            "object_definition": "object",
            "trait_definition": "trait",
            "enum_definition": "enum",
        },
        namespaces=frozenset({"package_clause"}),
        leading=frozenset({"comment", "block_comment"}),
    ),
    "bash": LanguageSpec(
        functions={"function_definition": "function"},
        classes={},
    ),
    "elixir": LanguageSpec(
        functions={
            "call:def": "function",
            "call:defp": "function",
            "call:defdelegate": "function",
            "call:defmacro": "macro",
            "call:defmacrop": "macro",
            "call:defguard": "guard",
            "call:defguardp": "guard",
        },
        classes={
            "call:defmodule": "module",
            "call:defprotocol": "protocol",
            "call:defimpl": "impl",
        },
        # `@doc`, `@spec`, `@impl` ... directly above a def belong to it.
        leading=frozenset({"comment", "unary_operator:@"}),
        bodies=frozenset({"do_block"}),
        keyed={"call": "target", "unary_operator": "operator"},
        merge_clauses=True,
    ),
    # `local x = function ... end` and `M.f = function ... end`: see DefinitionFinder._lua_def.
    "lua": LanguageSpec(
        functions={"function_declaration": "function"},
        classes={},
    ),
    "haskell": LanguageSpec(
        functions={"function": "function", "bind": "function"},
        classes={
            "data_type": "data",
            "newtype": "newtype",
            "type_synomym": "type",  # sic: the grammar's spelling
            "type_family": "type",
            "data_family": "data",
            "class": "class",
            "instance": "instance",
        },
        namespaces=frozenset({"declarations"}),
        # A type signature (and INLINE-style pragmas) above a function belongs to it.
        leading=frozenset({"comment", "haddock", "pragma", "signature"}),
        bodies=frozenset({"declarations", "class_declarations", "instance_declarations"}),
        merge_clauses=True,
    ),
    # Functions and `const X = struct {...}` are both `Decl` nodes: see DefinitionFinder._zig_def.
    "zig": LanguageSpec(
        functions={"TestDecl": "test"},
        classes={},
        # `pub` is a token beside the Decl it qualifies, so it must not cut the doc
        # comment off.
        leading=frozenset({"doc_comment", "line_comment", "pub"}),
    ),
}
