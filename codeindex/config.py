"""Settings and limits, loaded from defaults < pyproject ``[tool.codeindex]`` <
``.codeindex.toml`` < ``CODEINDEX_*`` environment variables < explicit overrides.

Every limit lives here as a named field and is enforced in exactly one place
(the docstring of each field says where).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from codeindex.errors import CodeIndexError, ConfigError
from codeindex.reading import read_regular

SCHEMA_VERSION = 3
DEFAULT_MODEL = "all-MiniLM-L6-v2"
INDEX_DIRNAME = ".codeindex"
# What the OS accepts (Linux PATH_MAX and the NAME_MAX of common filesystems): longer
# paths fail with ENAMETOOLONG deep inside a read, so they are refused up front.
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
# pyproject.toml / .codeindex.toml larger than this are refused (a real one is a few KiB).
MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one indexed root."""

    root: Path
    index_dir: Path
    # --- model / embedding (enforced in embedding/) ---
    model: str = DEFAULT_MODEL  # model id, or a local path to a sentence-transformers model
    device: str = "auto"  # "auto", "cpu", "cuda"
    # "auto": codeindex's builtin BERT encoder when the model allows, else the
    # sentence-transformers library; "builtin" / "sentence-transformers" force one.
    encoder: str = "auto"
    # What embeds a search query. "auto": the torch model when this process has loaded
    # it (one model per process), else the numpy encoder when the model's layout allows
    # (no torch import: the cold CLI path) and `encoder` is not "sentence-transformers";
    # "numpy" / "torch" force one. Same vectors either way (within 1e-5).
    query_encoder: str = "auto"
    max_batch_size: int = 64  # upper bound; the memory governor may pick less
    embed_memory_mb: int = 128  # activation budget of one embedding batch (governor)
    min_batch_size: int = 1
    # --- chunking (enforced in chunking/) ---
    max_chunk_tokens: int = 256  # model window in word pieces (incl. special tokens)
    max_chunk_lines: int = 60
    max_chunk_chars: int = 1600
    max_line_chars: int = 1000  # longer lines (minified code) are split into pieces
    # --- discovery (enforced in discovery/) ---
    max_file_mb: float = 100.0  # larger files are skipped as too_large
    follow_symlinks: bool = True  # only ever inside the root
    # False: lock files, minified bundles, source maps, SVGs and files marked generated
    # are skipped as "generated" (a .codeindexignore "!pattern" brings one back).
    # Not in options_hash: like ignore files it only changes which files are indexed,
    # and the next run adds or drops exactly those files.
    index_generated: bool = False
    # --- streaming (enforced in chunking/streaming.py via pipeline) ---
    stream_threshold_mb: float = 10.0  # files above this are streamed, never read whole
    read_buffer_bytes: int = 1 << 20
    # --- pipeline / storage (enforced in pipeline.py / storage/) ---
    write_batch_rows: int = 512
    version_retention_seconds: float = 60.0  # older table versions are cleaned up
    # --- memory (enforced in memory.py) ---
    memory_limit_mb: int = 0  # 0 = cgroup limit if any, else a share of physical memory
    # --- long-running modes ---
    idle_unload_minutes: float = 15.0
    debounce_ms: int = 300
    max_debounce_ms: int = 2000
    event_queue_limit: int = 10_000
    # --- requests (enforced in service.py; the MCP tools' descriptions show them) ---
    max_query_chars: int = 2000  # search queries (search)
    max_k: int = 100  # hits per page (search, find_similar)
    max_search_depth: int = 1000  # offset + k: deeper search pages are refused (search)
    max_page_size: int = 500  # files per page (list_files)
    max_code_lines: int = 2000  # lines per range (get_code)
    max_code_bytes: int = 512 * 1024  # characters per range, counted as read (get_code)
    # --- background runs of the long-running modes (enforced in live.py) ---
    max_reindex_paths: int = 1000  # paths in one reindex call; more: reindex the root
    max_reported_failures: int = 20  # failed files listed in a reindex result (count exact)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    # ---- derived ----
    @property
    def stream_threshold_bytes(self) -> int:
        return int(self.stream_threshold_mb * 1024 * 1024)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def options_hash(self) -> str:
        """Hash of every option that changes what is stored; a mismatch means re-index."""
        keys = {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "max_chunk_tokens": self.max_chunk_tokens,
            "max_chunk_lines": self.max_chunk_lines,
            "max_chunk_chars": self.max_chunk_chars,
            "max_line_chars": self.max_line_chars,
        }
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


ENCODERS = ("auto", "builtin", "sentence-transformers")
QUERY_ENCODERS = ("auto", "numpy", "torch")
# Limits where 0 would refuse every request (or list nothing): at least 1.
_AT_LEAST_ONE = (
    "max_query_chars",
    "max_k",
    "max_search_depth",
    "max_page_size",
    "max_code_lines",
    "max_code_bytes",
    "max_reindex_paths",
    "max_reported_failures",
)
_TUNABLE = {f.name: f for f in fields(Settings) if f.name not in ("root", "index_dir", "sources")}


def _coerce(name: str, value: Any, source: str) -> Any:
    f = _TUNABLE[name]
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if typ == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ == "int":
            out: Any = int(value)
        elif typ == "float":
            out = float(value)
        else:
            out = str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: {name} = {value!r} is not a valid {typ}; fix or remove it."
        ) from None
    if isinstance(out, int | float) and not isinstance(out, bool) and out < 0:
        raise ConfigError(f"{source}: {name} must not be negative (got {value!r}).")
    return out


def _read_toml(path: Path, table: str | None) -> dict[str, Any]:
    # The repository controls these files: a FIFO or a link to /dev/zero named
    # pyproject.toml must give an error, not a hang or unbounded memory.
    try:
        raw = read_regular(str(path), MAX_CONFIG_FILE_BYTES, follow_symlinks=True)
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix the file or remove it.") from None
    if table:
        for part in table.split("."):
            data = data.get(part, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else {}


def check_path_length(
    path: str | os.PathLike[str],
    what: str = "path",
    error: type[CodeIndexError] = CodeIndexError,
) -> None:
    """Raise ``error`` (one line, naming ``what``) when ``path`` is over MAX_PATH_CHARS
    characters or one of its names is over MAX_NAME_BYTES bytes of UTF-8.

    Every path and path glob a user passes goes through this before it reaches the OS
    or a query, so an over-long one is a clear refusal, never a traceback or a
    message-less error. The path itself is only quoted in part: it may be huge.
    """
    raw = os.fspath(path)
    if len(raw) > MAX_PATH_CHARS:
        raise error(
            f"the {what} {raw[:40]!r}... is {len(raw)} characters long; the limit is "
            f"{MAX_PATH_CHARS}, pass a shorter one."
        )
    for name in raw.replace(os.sep, "/").split("/"):
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > MAX_NAME_BYTES:
            raise error(
                f"the {what} has a name of {size} bytes ({name[:40]!r}...); a file or "
                f"directory name is at most {MAX_NAME_BYTES} bytes, pass a shorter one."
            )


def load_settings(
    root: str | os.PathLike[str] = ".",
    index_dir: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings for ``root``.

    Raises ConfigError naming the file/variable when a value is invalid or unknown.
    ``overrides`` with value None are ignored (convenient for CLI flags).
    """
    env = dict(os.environ) if env is None else env
    check_path_length(root, "root", ConfigError)
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise ConfigError(f"{root}: not a directory; pass the root of a source tree.")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(layer: dict[str, Any], source: str) -> None:
        for key, value in layer.items():
            name = key.replace("-", "_")
            if name == "index_dir":
                values["index_dir"] = value
                sources["index_dir"] = source
                continue
            if name not in _TUNABLE:
                raise ConfigError(f"{source}: unknown setting {key!r}.")
            values[name] = _coerce(name, value, source)
            sources[name] = source

    apply(_read_toml(root_path / "pyproject.toml", "tool.codeindex"), "pyproject.toml")
    apply(_read_toml(root_path / ".codeindex.toml", None), ".codeindex.toml")
    env_layer = {}
    for key, value in env.items():
        if key.startswith("CODEINDEX_") and key != "CODEINDEX_DIR":
            name = key[len("CODEINDEX_") :].lower()
            if name in _TUNABLE:
                env_layer[name] = value
    apply(env_layer, "environment")
    if env.get("CODEINDEX_DIR"):
        values["index_dir"] = env["CODEINDEX_DIR"]
        sources["index_dir"] = "CODEINDEX_DIR"
    apply({k: v for k, v in overrides.items() if v is not None}, "command line")
    if index_dir is not None:
        values["index_dir"] = index_dir
        sources["index_dir"] = "command line"

    idx = values.pop("index_dir", None)
    if idx:
        check_path_length(idx, f"index directory ({sources['index_dir']})", ConfigError)
    idx_path = Path(idx).expanduser() if idx else root_path / INDEX_DIRNAME
    if not idx_path.is_absolute():
        idx_path = (root_path / idx_path).resolve()
    settings = Settings(root=root_path, index_dir=idx_path, sources=sources, **values)
    if settings.max_batch_size < 1 or settings.max_chunk_tokens < 16:
        raise ConfigError("max_batch_size must be ≥ 1 and max_chunk_tokens ≥ 16.")
    for name in _AT_LEAST_ONE:
        if getattr(settings, name) < 1:
            raise ConfigError(
                f"{sources.get(name)}: {name} must be at least 1 (got {getattr(settings, name)})."
            )
    for name, allowed in (("encoder", ENCODERS), ("query_encoder", QUERY_ENCODERS)):
        if getattr(settings, name) not in allowed:
            raise ConfigError(
                f"{sources.get(name)}: {name} = {getattr(settings, name)!r} is not one of "
                f"{', '.join(allowed)}."
            )
    return settings
