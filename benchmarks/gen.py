"""Deterministic generators of source trees for benchmarks (nothing big is committed)."""

from __future__ import annotations

import random
from pathlib import Path

_VERBS = [
    "load",
    "parse",
    "validate",
    "render",
    "compute",
    "fetch",
    "store",
    "merge",
    "encode",
    "decode",
    "schedule",
    "retry",
    "cache",
    "index",
    "search",
    "refresh",
]
_NOUNS = [
    "config",
    "token",
    "user",
    "session",
    "record",
    "invoice",
    "packet",
    "query",
    "report",
    "matrix",
    "graph",
    "buffer",
    "request",
    "response",
    "ledger",
    "image",
]


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_VERBS), rng.choice(_NOUNS)


def python_file(rng: random.Random, i: int, functions: int = 3) -> str:
    out = [f'"""Module {i}: generated for benchmarks."""', "", "import math", ""]
    for j in range(functions):
        verb, noun = _name(rng)
        out += [
            "",
            f"def {verb}_{noun}_{i}_{j}(items, limit={rng.randint(1, 99)}):",
            f'    """{verb.capitalize()} the {noun} items up to a limit."""',
            "    total = 0",
            "    for k, item in enumerate(items):",
            "        if k >= limit:",
            "            break",
            f"        total += math.sqrt(abs(item)) * {rng.random():.4f}",
            "    return total",
        ]
    return "\n".join(out) + "\n"


def js_file(rng: random.Random, i: int, functions: int = 3) -> str:
    out = [f"// Module {i}: generated for benchmarks."]
    for j in range(functions):
        verb, noun = _name(rng)
        out += [
            "",
            f"export function {verb}{noun.capitalize()}{i}x{j}(list, opts = {{}}) {{",
            "  const out = [];",
            "  for (const item of list) {",
            f"    if (item.{noun} && item.score > {rng.randint(1, 50)}) out.push(item);",
            "  }",
            "  return out;",
            "}",
        ]
    return "\n".join(out) + "\n"


def go_file(rng: random.Random, i: int, functions: int = 3) -> str:
    out = ["package gen", ""]
    for j in range(functions):
        verb, noun = _name(rng)
        out += [
            f"// {verb.capitalize()}{noun.capitalize()}{i}x{j} {verb}s the {noun}.",
            f"func {verb.capitalize()}{noun.capitalize()}{i}x{j}(xs []int) int {{",
            "\tsum := 0",
            "\tfor _, x := range xs {",
            f"\t\tsum += x * {rng.randint(1, 9)}",
            "\t}",
            "\treturn sum",
            "}",
            "",
        ]
    return "\n".join(out)


def generate_tree(root: Path, files: int, seed: int = 7, functions: int = 3) -> int:
    """Write ``files`` small source files under ``root`` (100 per directory).
    Returns the number of bytes written."""
    rng = random.Random(seed)
    makers = [(".py", python_file), (".js", js_file), (".go", go_file)]
    written = 0
    for i in range(files):
        d = root / f"pkg{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        ext, maker = makers[i % 3]
        text = maker(rng, i, functions)
        (d / f"mod{i}{ext}").write_text(text)
        written += len(text)
    return written


def big_text_file(path: Path, megabytes: float, seed: int = 1) -> None:
    """A data-like file of ``megabytes`` MB (CSV-ish lines), written in blocks."""
    rng = random.Random(seed)
    target = int(megabytes * 1024 * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        size = 0
        n = 0
        while size < target:
            block = "".join(
                f"{n + k},{rng.choice(_NOUNS)},{rng.random():.6f},{rng.choice(_VERBS)}\n"
                for k in range(2000)
            )
            n += 2000
            fh.write(block)
            size += len(block)


def single_line_file(path: Path, megabytes: float) -> None:
    """A minified-bundle-like file: one line of ``megabytes`` MB.

    Discovery skips minified text as ``generated`` by default; the benchmarks index this
    file on purpose (to measure streaming one huge line), so a ``.codeindexignore``
    negation next to it brings it back."""
    target = int(megabytes * 1024 * 1024)
    piece = "var a=function(b){return b*2};" * 100
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".codeindexignore", "a") as fh:
        fh.write(f"!{path.name}\n")
    with open(path, "w") as fh:
        size = 0
        while size < target:
            fh.write(piece)
            size += len(piece)
