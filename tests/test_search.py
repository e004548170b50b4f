"""Hybrid search on the sample repository with the real bundled model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codeindex.embedding import FakeEmbedder
from codeindex.errors import BadCursorError, CodeIndexError, IndexMissingError
from codeindex.locking import WriterLock
from codeindex.ranking import Ranking
from codeindex.service import CodeIndex
from codeindex.types import SearchPage
from tests.conftest import fake_settings, open_store

pytestmark = pytest.mark.model

KNOWN_ANSWERS = [
    ("where are JWTs validated", "auth/tokens.py", "validate_jwt"),
    ("rate limiter that refills tokens over time", "net/ratelimit.go", None),
    ("evict the least recently used cache entry", "storage/lru.rs", None),
    ("retry failed http requests with exponential backoff", "net/retry.ts", "fetchWithRetry"),
    ("hash a password with a random salt", "auth/java/PasswordHasher.java", None),
    ("parse comma separated values into objects", "web/src/csv.js", None),
    ("compress the database directory into a tarball", "tools/backup.sh", None),
    ("escape quotes in a SQL string", "storage/query.c", "escape_sql_string"),
]


@pytest.mark.parametrize(("query", "path", "symbol"), KNOWN_ANSWERS)
def test_known_answers_rank_first(real_index, query, path, symbol) -> None:
    res = real_index.search(query, k=5)
    top = res.results[0]
    assert top.path == path, [(h.path, h.symbol) for h in res.results]
    if symbol:
        assert symbol in top.symbol
    assert res.coverage == 1.0


def test_symbol_query_finds_definition(real_index) -> None:
    top = real_index.search("splitCsvLine", k=3).results[0]
    assert top.path == "web/src/csv.js" and top.symbol.endswith("splitCsvLine")


def test_result_shape_and_line_numbers(real_index) -> None:
    hit = real_index.search("validate_jwt", k=1).results[0]
    assert set(hit.as_dict()) == {
        "path",
        "start_line",
        "end_line",
        "score",
        "symbol",
        "language",
        "snippet",
        "match_line",
    }
    assert hit.start_line <= hit.match_line <= hit.end_line
    lines = (real_index.settings.root / hit.path).read_text().splitlines()
    got = "\n".join(lines[hit.start_line - 1 : hit.end_line])
    assert got == hit.snippet
    assert hit.language == "python"


def test_filters_apply_before_top_k(real_index) -> None:
    # The JWT query's best hits are Python; a Rust filter must still fill k from Rust.
    res = real_index.search("where are JWTs validated", k=2, language="rust")
    assert res.results and all(h.language == "rust" for h in res.results)
    res = real_index.search("where are JWTs validated", k=3, glob="net/**")
    assert res.results and all(h.path.startswith("net/") for h in res.results)
    res = real_index.search("function", k=5, glob="*.go")
    assert res.results and all(h.path.endswith(".go") for h in res.results)


def test_cursor_pages_do_not_overlap(real_index) -> None:
    first = real_index.search("function", k=3)
    assert first.next_cursor
    second = real_index.search("function", k=3, cursor=first.next_cursor)
    keys = {(h.path, h.start_line) for h in first.results}
    assert keys.isdisjoint({(h.path, h.start_line) for h in second.results})


def test_bad_cursors_get_clear_errors(real_index) -> None:
    with pytest.raises(BadCursorError, match="malformed"):
        real_index.search("function", cursor="not-a-cursor")
    other = real_index.search("function", k=3).next_cursor
    with pytest.raises(BadCursorError, match="different query"):
        real_index.search("token bucket", k=3, cursor=other)


def test_bad_arguments(real_index) -> None:
    with pytest.raises(CodeIndexError, match="empty"):
        real_index.search("   ")
    with pytest.raises(CodeIndexError, match="between 1 and 100"):
        real_index.search("x", k=0)
    with pytest.raises(CodeIndexError, match="under"):
        real_index.search("x" * 5000)


def test_find_similar_excludes_itself(real_index) -> None:
    res = real_index.find_similar("auth/tokens.py", 19, 33, k=3)
    assert res["results"]
    for h in res["results"]:
        assert not (h["path"] == "auth/tokens.py" and h["start_line"] <= 33 and h["end_line"] >= 19)


def test_candidates_are_read_without_text_and_the_page_gets_it(fake_index) -> None:
    store = open_store(fake_index)
    vec = fake_index.embedder.embed(["rate limiter"])[0]
    bare = store.vector_search(vec, 50, None, with_text=False, all_embedded=True)
    full = store.vector_search(vec, 50, None)
    assert bare and all("text" not in r for r in bare)
    # Skipping the has-vector prefilter when every chunk has one changes nothing.
    assert [r["id"] for r in bare] == [r["id"] for r in full]
    lexical = store.text_search("limiter", 50, None, with_text=False)
    assert lexical and all("text" not in r for r in lexical)
    texts = store.chunk_texts([r["id"] for r in full[:3]] + ["no-such-id"])
    assert texts == {r["id"]: r["text"] for r in full[:3]}
    # What search returns carries each hit's text.
    for hit in fake_index.search("rate limiter", k=5).results:
        lines = (fake_index.settings.root / hit.path).read_text().splitlines()
        assert hit.snippet == "\n".join(lines[hit.start_line - 1 : hit.end_line])


def test_the_page_says_whether_the_vector_side_ran(fake_index, sample_repo: Path) -> None:
    page = fake_index.search("rate limiter", k=3)
    assert page.semantic is True and page.results
    assert "semantic" not in page.as_dict()  # the CLI's --json shape stays as it was
    assert fake_index.search("rate limiter", k=3, semantic=False).semantic is False
    assert fake_index.search("rate limiter", ranking=Ranking(vector=False)).semantic is False
    # Nothing embedded yet: full-text hits only, even when semantic search is asked for.
    words_only = CodeIndex(fake_settings(sample_repo, index_dir=sample_repo / ".words"))
    words_only.index(embed=False)
    page = words_only.search("rate limiter", k=3)
    assert page.results and page.coverage == 0.0 and page.semantic is False


def test_no_results_yet_while_a_run_builds_the_index(sample_repo: Path) -> None:
    ci = CodeIndex(fake_settings(sample_repo), embedder=FakeEmbedder())
    with pytest.raises(IndexMissingError):  # nothing is building it
        ci.search("validate_jwt")
    # A run the caller has queued (a server's catch-up): "no results yet".
    assert ci.search(" validate_jwt ", run_pending=True) == SearchPage.empty("validate_jwt")
    with pytest.raises(CodeIndexError, match="between 1 and 100"):  # still validated
        ci.search("validate_jwt", k=0, run_pending=True)
    # A run of this process, waiting for the writer lock another writer holds.
    other = WriterLock(ci.settings.index_dir)
    other.acquire()
    waiting = threading.Event()
    run = threading.Thread(target=ci.index, kwargs={"on_wait": lambda _msg: waiting.set()})
    run.start()
    try:
        assert waiting.wait(30)
        assert ci.running
        page = ci.search("validate_jwt")
        assert (page.results, page.coverage, page.semantic) == ((), 0.0, False)
    finally:
        other.release()
        run.join(60)
    assert not ci.running
    assert ci.search("validate_jwt").results[0].path == "auth/tokens.py"
