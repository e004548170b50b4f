"""Import layers, checked statically (every module parsed with ``ast``, none imported).

Two contracts (DESIGN.md, docs/architecture.md):

* **Heavy libraries**: only ``codeindex/embedding/`` imports torch and the model
  libraries, only ``codeindex/storage/`` imports lancedb/lance/pyarrow. That is what
  keeps ``codeindex --help``, ``status`` and ``list-files`` fast.
* **Layers**: dependencies point down (:data:`LAYERS`). A module imports only from its
  own layer or a lower one, and the stages do not import each other, so each stage can
  be read, tested and replaced alone.

``.ci/run`` runs this file as a step of its own, so a layer break is visible as such.
"""

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

# The package's units (a top-level module, or a subpackage as a whole), top layer
# first. "codeindex" is the package's own __init__ (``__version__``): Python runs it
# before any submodule, so it sits at the bottom and may import nothing above it.
# A unit that exists but is not listed fails the test.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("front ends", frozenset({"__main__", "cli", "mcp"})),
    ("live", frozenset({"live"})),
    ("watch", frozenset({"watch"})),
    ("service", frozenset({"service"})),
    ("pipeline", frozenset({"pipeline"})),
    ("stages", frozenset({"discovery", "chunking", "embedding", "storage", "ranking"})),
    (
        "support",
        frozenset({"config", "memory", "languages", "locking", "runstate", "reading"}),
    ),
    ("values", frozenset({"types", "errors", "codeindex"})),
)
# Layers whose units may not import one another (DESIGN.md: "Stages do not import each
# other"). What two stages share lives below them, in support or values.
ISOLATED = frozenset({"stages"})

# (module, imported unit) -> why the import is allowed although it breaks the layers.
# Empty today; an entry that no longer matches an import fails the test, so the list
# only shrinks.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}


def _targets(tree: ast.AST, module: str) -> Iterator[str]:
    """The absolute dotted name of everything ``module`` imports, anywhere in its code
    (function-level imports too): ``import a.b`` gives ``a.b``; ``from a import b``
    gives ``a`` and ``a.b`` (``b`` may be a submodule); relative imports are resolved
    against ``module``; ``importlib.import_module("a")`` gives ``a``."""
    package = module.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # _module_name() calls an __init__ `pkg.__init__`, so dropping `level`
                # parts leaves the package the import is relative to, for any module.
                parent = package[: len(package) - node.level]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if base:
                yield base
                for alias in node.names:
                    yield f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func, arg = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            value = arg.value if isinstance(arg, ast.Constant) else None
            if name in ("import_module", "__import__") and isinstance(value, str):
                yield value


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _imported(tree: ast.AST, module: str = "") -> Iterator[str]:
    """Every module name ``module`` imports, with its parents (``a.b`` yields ``a``
    and ``a.b``)."""
    for target in _targets(tree, module):
        yield from _prefixes(target)


def _module_name(path: Path, package: Path) -> str:
    """``codeindex/chunking/syntax.py`` -> ``codeindex.chunking.syntax``; a package's
    ``__init__.py`` is named as a module inside it (``codeindex.chunking.__init__``) so
    that relative imports resolve against the package itself."""
    return ".".join(path.relative_to(package.parent).with_suffix("").parts)


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def layer_breaks(package: Path = PACKAGE) -> set[tuple[str, str]]:
    """(module path relative to the package's parent, library) for every import of a
    model library outside ``embedding/`` or of a storage library outside ``storage/``."""
    breaks = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        inside = path.relative_to(package).parts[0]
        names = set(_imported(_parse(path), _module_name(path, package)))
        if inside != "embedding":
            breaks |= {(rel, lib) for lib in MODEL_LIBS & names}
        if inside != "storage":
            breaks |= {(rel, lib) for lib in STORAGE_LIBS & names}
    return breaks


def _unit_of_path(path: Path, package: Path) -> str:
    first = path.relative_to(package).parts[0]
    return package.name if first == "__init__.py" else first.removesuffix(".py")


def _unit_of_target(target: str, package: Path) -> str | None:
    """The unit an imported name belongs to, or None when it is outside the package.
    ``codeindex.x`` is unit ``x`` when ``x`` is a module or subpackage; otherwise it is
    a name from the package's ``__init__`` (``from codeindex import __version__``)."""
    parts = target.split(".")
    if parts[0] != package.name:
        return None
    if len(parts) > 1 and ((package / f"{parts[1]}.py").is_file() or (package / parts[1]).is_dir()):
        return parts[1]
    return package.name


def unit_edges(package: Path = PACKAGE) -> set[tuple[str, str, str]]:
    """(module path, its unit, imported unit) for every import of another unit of the
    package (imports inside a unit, e.g. between ``chunking/`` modules, are its own)."""
    edges = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        unit = _unit_of_path(path, package)
        for target in _targets(_parse(path), _module_name(path, package)):
            imported = _unit_of_target(target, package)
            if imported is not None and imported != unit:
                edges.add((rel, unit, imported))
    return edges


def layer_violations(
    package: Path = PACKAGE, layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS
) -> tuple[set[tuple[str, str]], set[str]]:
    """The imports that break :data:`LAYERS` as (module path, imported unit), and the
    units of ``package`` that no layer lists."""
    rank = {unit: i for i, (_, units) in enumerate(layers) for unit in units}
    isolated = {unit for name, units in layers if name in ISOLATED for unit in units}
    units = {_unit_of_path(path, package) for path in package.rglob("*.py")}
    unplaced = units - rank.keys()
    violations = set()
    for rel, unit, imported in unit_edges(package):
        if unit in unplaced or imported in unplaced:
            continue  # reported as unplaced; its layer decides the rest
        upward = rank[imported] < rank[unit]
        sideways = imported in isolated and unit in isolated
        if upward or sideways:
            violations.add((rel, imported))
    return violations, unplaced


def test_only_embedding_imports_torch_and_only_storage_imports_lance() -> None:
    breaks = layer_breaks()
    new = sorted(breaks - ALLOWED)
    assert not new, (
        f"imports across a layer: {new}; torch and the model libraries belong in "
        "codeindex/embedding/, lancedb/lance/pyarrow in codeindex/storage/"
    )
    gone = sorted(ALLOWED - breaks)
    assert not gone, f"no longer imported, remove from ALLOWED in {__file__}: {gone}"


def test_dependencies_point_down_and_stages_do_not_import_each_other() -> None:
    # The parser must see real edges, or an empty result would prove nothing.
    assert ("codeindex/pipeline.py", "pipeline", "chunking") in unit_edges()
    violations, unplaced = layer_violations()
    assert not unplaced, (
        f"modules in no layer: {sorted(unplaced)}; add each to LAYERS in {__file__} "
        "(and to docs/architecture.md)"
    )
    new = sorted(violations - ALLOWED_EDGES.keys())
    order = " > ".join(name for name, _ in LAYERS)
    assert not new, (
        f"imports against the layers ({order}; stages do not import each other): {new}. "
        "Move the shared code down a layer, or pass it in from above."
    )
    gone = sorted(ALLOWED_EDGES.keys() - violations)
    assert not gone, f"no longer imported, remove from ALLOWED_EDGES in {__file__}: {gone}"


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
    _write(tmp_path, files)
    found = layer_breaks(tmp_path / "codeindex")
    assert found and {m for m, _ in found} == {module}
    if lib:
        assert (module, lib) in found


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


# A small package that keeps the layers: every kind of allowed import once.
_LAYERED = {
    "codeindex/__init__.py": "__version__ = '0'\n",
    "codeindex/__main__.py": "from codeindex.cli import main\n",
    "codeindex/cli.py": "from codeindex import __version__\nfrom codeindex.mcp import server\n",
    "codeindex/mcp/__init__.py": "",
    "codeindex/mcp/server.py": "from codeindex.watch import Watcher\nfrom . import packing\n",
    "codeindex/mcp/packing.py": "from ..errors import CodeIndexError\n",
    "codeindex/watch.py": "from codeindex import discovery, service\n",
    "codeindex/service.py": "from codeindex.pipeline import Pipeline\nimport codeindex.ranking\n",
    "codeindex/pipeline.py": "from codeindex import chunking\nfrom codeindex.storage import S\n",
    "codeindex/discovery/__init__.py": "from codeindex.discovery.walk import walk\n",
    "codeindex/discovery/walk.py": "from codeindex.config import Settings\n",
    "codeindex/chunking/__init__.py": "from .lines import x\nfrom codeindex.types import Chunk\n",
    "codeindex/chunking/lines.py": "from codeindex.languages import EXTENSIONS\n",
    "codeindex/storage/__init__.py": "from codeindex import memory, errors\n",
    "codeindex/ranking.py": "from codeindex.types import SearchHit\n",
    "codeindex/config.py": "from codeindex.errors import ConfigError\n",
    "codeindex/memory.py": "",
    "codeindex/languages.py": "",
    "codeindex/types.py": "from codeindex.errors import CodeIndexError\n",
    "codeindex/errors.py": "",
}


def test_the_layer_check_passes_a_package_that_keeps_the_layers(tmp_path: Path) -> None:
    _write(tmp_path, _LAYERED)
    assert layer_violations(tmp_path / "codeindex") == (set(), set())


@pytest.mark.parametrize(
    ("module", "source", "imported"),
    [
        # upward, at module level and lazily inside a function
        ("codeindex/config.py", "from codeindex.service import CodeIndex\n", "service"),
        ("codeindex/pipeline.py", "def f():\n    from codeindex import watch\n", "watch"),
        ("codeindex/service.py", "import codeindex.cli\n", "cli"),
        (
            "codeindex/types.py",
            "import importlib\nimportlib.import_module('codeindex.config')\n",
            "config",
        ),
        # one stage importing another, absolute and relative
        ("codeindex/storage/__init__.py", "from codeindex.chunking import lines\n", "chunking"),
        ("codeindex/ranking.py", "from codeindex import discovery\n", "discovery"),
        ("codeindex/chunking/lines.py", "from ..storage import Store\n", "storage"),
        # the package's __init__ runs first, so it may import nothing above it
        ("codeindex/__init__.py", "from codeindex.config import Settings\n", "config"),
    ],
)
def test_the_layer_check_catches_an_import_against_the_layers(
    tmp_path: Path, module: str, source: str, imported: str
) -> None:
    _write(tmp_path, {**_LAYERED, module: _LAYERED.get(module, "") + source})
    violations, unplaced = layer_violations(tmp_path / "codeindex")
    assert violations == {(module, imported)}
    assert not unplaced


def test_the_layer_check_reports_a_module_in_no_layer(tmp_path: Path) -> None:
    _write(tmp_path, {**_LAYERED, "codeindex/extras/__init__.py": "import codeindex.cli\n"})
    violations, unplaced = layer_violations(tmp_path / "codeindex")
    assert unplaced == {"extras"}
    assert not violations


def test_importing_the_embedding_package_does_not_import_torch() -> None:
    code = (
        "import sys, codeindex.embedding, codeindex.cli\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'tokenizers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
