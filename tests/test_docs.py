"""README.md documents only settings that exist: every setting it names (the
Configuration table, its TOML examples, ``CODEINDEX_*`` variables anywhere) is a field
that ``codeindex/config.py`` loads, and is read somewhere in the package, so the README
cannot advertise a knob that was renamed, removed or never wired up."""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from codeindex.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE = ROOT / "codeindex"

# Settings fields that are not settings a user writes: the indexed root is the command's
# argument, and sources records where each value came from.
_NOT_SETTINGS = frozenset({"root", "sources"})
_ENV = re.compile(r"\bCODEINDEX_([A-Z][A-Z0-9_]*)\b")


def known_settings() -> set[str]:
    """What ``load_settings`` accepts from a file or ``CODEINDEX_*``: every Settings field
    but the root and the sources record (``index_dir`` is one, as ``CODEINDEX_DIR``)."""
    return {f.name for f in fields(Settings)} - _NOT_SETTINGS


def configuration_section(readme: str) -> str:
    """The text of README's ``## Configuration`` section (up to the next ``## ``)."""
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", readme, re.M | re.S)
    assert match, "README.md has no '## Configuration' section"
    return match.group(1)


def table_settings(section: str) -> set[str]:
    """The setting names in the first column of the section's settings table:
    backticked lower-case names (``a`` / ``b`` rows give both; the ``(CODEINDEX_DIR,
    --index-dir)`` aliases are not names of their own)."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows and rows[0].split("|")[1].strip() == "setting", "no settings table found"
    names = set()
    for row in rows[2:]:  # after the header and its |---| rule
        names |= set(re.findall(r"`([a-z][a-z0-9_]*)`", row.split("|")[1]))
    return names


def toml_examples(section: str) -> list[str]:
    """The section's ```toml code blocks."""
    return re.findall(r"^```toml\n(.*?)^```", section, re.M | re.S)


def example_settings(example: str) -> set[str]:
    """The keys a TOML example sets: ``[tool.codeindex]`` in a pyproject.toml, else the
    top-level keys of a ``.codeindex.toml``."""
    data = tomllib.loads(example)
    table = data.get("tool", {}).get("codeindex")
    return set(table if table is not None else data)


def env_settings(readme: str) -> set[str]:
    """The settings behind the ``CODEINDEX_<NAME>`` variables named anywhere in the
    README (``CODEINDEX_DIR`` is ``index_dir``)."""
    return {"index_dir" if n == "DIR" else n.lower() for n in _ENV.findall(readme)}


def documented_settings(readme: str) -> set[str]:
    section = configuration_section(readme)
    names = table_settings(section) | env_settings(readme)
    for example in toml_examples(section):
        names |= example_settings(example)
    return names


def read_attributes(package: Path = PACKAGE) -> set[str]:
    """Every attribute name the package reads (``x.name`` in a load context): a setting
    no module reads this way is declared but dead."""
    names = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        names |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
        }
    return names


def test_readme_documents_only_settings_that_config_loads() -> None:
    documented = documented_settings(README.read_text(encoding="utf-8"))
    assert {"memory_limit_mb", "index_dir", "max_chunk_lines"} <= documented  # parsed
    unknown = sorted(documented - known_settings())
    assert not unknown, (
        f"README.md documents settings that codeindex/config.py does not load: {unknown}; "
        "remove them from README or add them to Settings"
    )


def test_settings_the_readme_documents_are_read_by_the_code() -> None:
    documented = documented_settings(README.read_text(encoding="utf-8"))
    unread = sorted((documented & known_settings()) - read_attributes())
    assert not unread, (
        f"README.md documents settings that no module reads: {unread}; wire them up or "
        "remove them from Settings and README"
    )


def test_the_readme_toml_examples_load(tmp_path: Path) -> None:
    examples = toml_examples(configuration_section(README.read_text(encoding="utf-8")))
    assert examples
    for example in examples:
        (tmp_path / "pyproject.toml").write_text(example, encoding="utf-8")
        settings = load_settings(tmp_path, env={})
        assert {settings.sources.get(key) for key in example_settings(example)} == {
            "pyproject.toml"
        }


_README = """# x

## Configuration

Set `CODEINDEX_{env}=1` to ...

```toml
[tool.codeindex]
{key} = 1
```

| setting | default | what it does |
|---|---|---|
| `index_dir` (`CODEINDEX_DIR`, `--index-dir`) | `.codeindex` | where |
| `max_chunk_lines` / `{row}` | 60 / 1 | sizes |

## Next
"""


@pytest.mark.parametrize(
    ("env", "key", "row", "unknown"),
    [
        ("MEMORY_LIMIT_MB", "memory_limit_mb", "max_chunk_chars", set()),
        ("MEMORY_LIMIT_MB", "memory_limit_mb", "max_chunk_widgets", {"max_chunk_widgets"}),
        ("MEMORY_LIMIT_MB", "stream_limit_mb", "max_chunk_chars", {"stream_limit_mb"}),
        ("MEMORY_CAP_MB", "memory_limit_mb", "max_chunk_chars", {"memory_cap_mb"}),
    ],
)
def test_the_check_finds_a_documented_setting_config_does_not_load(
    env: str, key: str, row: str, unknown: set[str]
) -> None:
    readme = _README.format(env=env, key=key, row=row)
    assert documented_settings(readme) - known_settings() == unknown


def test_the_check_finds_a_setting_no_module_reads(tmp_path: Path) -> None:
    package = tmp_path / "codeindex"
    package.mkdir()
    (package / "a.py").write_text("def f(s):\n    s.debounce_ms = 1\n    return s.debounce\n")
    assert "debounce" in read_attributes(package)
    assert "debounce_ms" not in read_attributes(package)  # written, never read
