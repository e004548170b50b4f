"""Request limits are settings (config.py) that CodeIndex enforces: a lowered setting
is what a search, listing or read is held to, with the fast fake embedder."""

from __future__ import annotations

import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.errors import CodeIndexError
from codeindex.service import CodeIndex


def test_lowered_limit_settings_are_enforced_by_the_service(fake_index: CodeIndex) -> None:
    lowered = fake_index.settings.replace(
        max_query_chars=10,
        max_k=3,
        max_search_depth=4,
        max_page_size=2,
        max_code_lines=3,
        max_code_bytes=20,
    )
    ci = CodeIndex(lowered, embedder=FakeEmbedder())
    with pytest.raises(CodeIndexError, match="the query is 11 characters; keep it under 10"):
        ci.search("x" * 11)
    with pytest.raises(CodeIndexError, match=r"k must be between 1 and 3 \(got 4\)"):
        ci.search("function", 4)
    with pytest.raises(CodeIndexError, match=r"k must be between 1 and 3 \(got 4\)"):
        ci.find_similar("auth/tokens.py", 3, 4, k=4)
    first = ci.search("function", 3)
    assert len(first.results) == 3 and first.next_cursor
    with pytest.raises(CodeIndexError, match="results beyond the first 4 are not served"):
        ci.search("function", 3, cursor=first.next_cursor)

    with pytest.raises(CodeIndexError, match="page_size must be between 1 and 2"):
        ci.list_files(page_size=3)
    assert len(ci.list_files(page_size=2).files) == 2

    with pytest.raises(CodeIndexError, match="ask for at most 3 lines at a time"):
        ci.get_code("auth/tokens.py", 1, 4)
    with pytest.raises(CodeIndexError, match="that range is too large"):
        ci.get_code("auth/tokens.py", 1, 1)  # 44 characters
    assert ci.get_code("auth/tokens.py", 3, 3)["text"] == "import base64"  # 13 characters


def test_over_long_paths_and_globs_are_one_line_errors(fake_index: CodeIndex) -> None:
    """The OS refuses paths over PATH_MAX or with a name over NAME_MAX deep inside a
    read (ENAMETOOLONG); the service refuses them first, with what to do."""
    long_path, long_name = "a" * 5000, f"auth/{'b' * 300}.py"
    for call in (
        lambda p: fake_index.get_code(p, 1, 2),
        lambda p: fake_index.find_similar(p, 1, 2),
        lambda p: fake_index.search("function", glob=p),
        lambda p: fake_index.list_files(glob=p),
    ):
        with pytest.raises(CodeIndexError, match="is 5000 characters long; the limit is 4096"):
            call(long_path)
        with pytest.raises(CodeIndexError, match="a name of 303 bytes.*at most 255 bytes"):
            call(long_name)
    assert fake_index.list_files(glob="auth/*.py").files  # normal globs still work
