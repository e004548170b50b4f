"""Import layers, checked statically: only ``codeindex/embedding/`` imports torch and
the model libraries, only ``codeindex/storage/`` imports lancedb/lance/pyarrow. That is
what keeps ``codeindex --help``, ``status`` and ``list-files`` fast (DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "codeindex"

MODEL_LIBS = frozenset({"torch", "sentence_transformers", "transformers", "safetensors.torch"})
STORAGE_LIBS = frozenset({"lancedb", "lance", "pyarrow"})

# (module, library) pairs allowed to break a layer. Remove an entry when its import
# goes; the test fails until you do, so the list only shrinks.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _imported(tree: ast.AST) -> Iterator[str]:
    """Every absolute module name a module imports (``a.b`` yields ``a`` and ``a.b``),
    including ``from a import b`` as ``a.b`` and ``importlib.import_module("a")``."""

    def prefixes(name: str) -> Iterator[str]:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            yield ".".join(parts[:i])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from prefixes(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from prefixes(node.module)
            for alias in node.names:
                yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func, arg = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            value = arg.value if isinstance(arg, ast.Constant) else None
            if name in ("import_module", "__import__") and isinstance(value, str):
                yield from prefixes(value)


def layer_breaks(package: Path = PACKAGE) -> set[tuple[str, str]]:
    """(module path relative to the package's parent, library) for every import of a
    model library outside ``embedding/`` or of a storage library outside ``storage/``."""
    breaks = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        inside = path.relative_to(package).parts[0]
        names = set(_imported(ast.parse(path.read_text(encoding="utf-8"), str(path))))
        if inside != "embedding":
            breaks |= {(rel, lib) for lib in MODEL_LIBS & names}
        if inside != "storage":
            breaks |= {(rel, lib) for lib in STORAGE_LIBS & names}
    return breaks


def test_only_embedding_imports_torch_and_only_storage_imports_lance() -> None:
    breaks = layer_breaks()
    new = sorted(breaks - ALLOWED)
    assert not new, (
        f"imports across a layer: {new}; torch and the model libraries belong in "
        "codeindex/embedding/, lancedb/lance/pyarrow in codeindex/storage/"
    )
    gone = sorted(ALLOWED - breaks)
    assert not gone, f"no longer imported, remove from ALLOWED in {__file__}: {gone}"


@pytest.mark.parametrize(
    ("module", "source", "lib"),
    [
        ("codeindex/service.py", "import torch\n", "torch"),
        ("codeindex/watch/worker.py", "def f():\n    import torch.nn.functional as F\n", "torch"),
        ("codeindex/ranking.py", "from safetensors.torch import load_file\n", "safetensors.torch"),
        ("codeindex/cli.py", "from sentence_transformers import SentenceTransformer\n", None),
        ("codeindex/memory.py", "import importlib\nimportlib.import_module('lancedb')\n", None),
        ("codeindex/mcp/server.py", "from pyarrow import compute\n", "pyarrow"),
    ],
)
def test_the_check_catches_a_new_offender(
    tmp_path: Path, module: str, source: str, lib: str | None
) -> None:
    files = {
        "codeindex/embedding/model.py": "import torch\nfrom sentence_transformers import X\n",
        "codeindex/storage/store.py": "import lancedb\nimport pyarrow as pa\n",
        module: source,
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = layer_breaks(tmp_path / "codeindex")
    assert found and {m for m, _ in found} == {module}
    if lib:
        assert (module, lib) in found


def test_importing_the_embedding_package_does_not_import_torch() -> None:
    code = (
        "import sys, codeindex.embedding, codeindex.cli\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'tokenizers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
