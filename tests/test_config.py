from __future__ import annotations

from pathlib import Path

import pytest

from codeindex.config import load_settings
from codeindex.errors import ConfigError


def test_precedence_pyproject_toml_env_override(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.codeindex]\nmax_chunk_lines = 40\nmemory_limit_mb = 500\ndebounce_ms = 100\n"
    )
    (tmp_path / ".codeindex.toml").write_text("max_chunk_lines = 30\nmemory-limit-mb = 600\n")
    s = load_settings(tmp_path, env={"CODEINDEX_MEMORY_LIMIT_MB": "700"})
    assert s.debounce_ms == 100  # pyproject
    assert s.max_chunk_lines == 30  # .codeindex.toml beats pyproject
    assert s.memory_limit_mb == 700  # environment beats files
    assert s.sources["memory_limit_mb"] == "environment"
    s = load_settings(tmp_path, env={}, max_chunk_lines=10)
    assert s.max_chunk_lines == 10 and s.sources["max_chunk_lines"] == "command line"


def test_index_dir_defaults_and_overrides(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).index_dir == tmp_path.resolve() / ".codeindex"
    other = tmp_path / "elsewhere"
    assert load_settings(tmp_path, env={"CODEINDEX_DIR": str(other)}).index_dir == other
    assert load_settings(tmp_path, index_dir="rel", env={}).index_dir == tmp_path.resolve() / "rel"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_chunk_lines = 'many'", "not a valid int"),
        ("bogus_setting = 1", "unknown setting"),
        ("max_file_mb = -5", "negative"),
        ("this is not toml", "cannot read"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / ".codeindex.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        load_settings(tmp_path / "missing", env={})


def test_options_hash_tracks_chunking_and_model(tmp_path: Path) -> None:
    a = load_settings(tmp_path, env={})
    assert a.options_hash() == load_settings(tmp_path, env={}, debounce_ms=5).options_hash()
    assert a.options_hash() != load_settings(tmp_path, env={}, max_chunk_lines=5).options_hash()
    assert a.options_hash() != load_settings(tmp_path, env={}, model="other").options_hash()


def test_index_generated_is_a_discovery_setting_not_an_index_option(tmp_path: Path) -> None:
    default = load_settings(tmp_path, env={})
    assert default.index_generated is False
    (tmp_path / ".codeindex.toml").write_text("index_generated = true\n")
    on = load_settings(tmp_path, env={})
    assert on.index_generated is True and on.sources["index_generated"] == ".codeindex.toml"
    assert (
        load_settings(tmp_path, env={"CODEINDEX_INDEX_GENERATED": "off"}).index_generated is False
    )
    # It changes which files are indexed, not how: the next run adds or drops exactly those
    # files, so flipping it must not make the whole index incompatible.
    assert on.options_hash() == default.options_hash()
    (tmp_path / ".codeindex.toml").write_text("index_generated = 'maybe'\n")
    with pytest.raises(ConfigError, match="not a valid bool"):
        load_settings(tmp_path, env={})


def test_request_limits_are_settings_at_least_one(tmp_path: Path) -> None:
    default = load_settings(tmp_path, env={})
    assert (default.max_k, default.max_page_size, default.max_search_depth) == (100, 500, 1000)
    assert (default.max_query_chars, default.max_code_lines) == (2000, 2000)
    assert (default.max_code_bytes, default.max_reindex_paths) == (512 * 1024, 1000)
    assert default.max_reported_failures == 20
    (tmp_path / ".codeindex.toml").write_text("max_k = 20\nmax-page-size = 50\n")
    s = load_settings(tmp_path, env={"CODEINDEX_MAX_REINDEX_PATHS": "7"})
    assert (s.max_k, s.max_page_size, s.max_reindex_paths) == (20, 50, 7)
    assert s.sources["max_reindex_paths"] == "environment"
    # They change what a request may ask for, not what is stored.
    assert s.options_hash() == default.options_hash()
    (tmp_path / ".codeindex.toml").write_text("max_k = 0\n")
    with pytest.raises(ConfigError, match=r"\.codeindex\.toml: max_k must be at least 1"):
        load_settings(tmp_path, env={})


def test_queue_chunks_is_gone(tmp_path: Path) -> None:
    # It bounded nothing (the reader queue is counted in files); now it is unknown.
    with pytest.raises(ConfigError, match="unknown setting 'queue_chunks'"):
        load_settings(tmp_path, env={}, queue_chunks=10)


@pytest.mark.parametrize("name", ["pyproject.toml", ".codeindex.toml"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "too-large"])
def test_a_config_file_that_is_not_a_small_regular_file_is_a_clear_error(
    tmp_path: Path, name: str, kind: str
) -> None:
    # A repository controls its config files: a FIFO must not hang the load, a link to
    # /dev/zero must not read without end, a huge file must not be parsed.
    import os

    from codeindex.config import MAX_CONFIG_FILE_BYTES

    path = tmp_path / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_text("# padding\n" * (MAX_CONFIG_FILE_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=f"cannot read .*{name}"):
        load_settings(tmp_path, env={})
