from __future__ import annotations

import pytest

from codeindex.ranking import RULES, analyze, definition_names, rank, stem
from codeindex.storage.filters import Filter, glob_to_like
from codeindex.storage.schema import search_text, split_identifier

ALL = frozenset(RULES)


def _row(
    cid: str,
    path: str = "a.py",
    start: int = 1,
    end: int = 5,
    symbol: str = "",
    language: str = "python",
    **scores: float,
) -> dict:
    return {
        "id": cid,
        "path": path,
        "start_line": start,
        "end_line": end,
        "symbol": symbol,
        "language": language,
        "text": "",
        **scores,
    }


# Each side's scores are normalised over its candidates; a weak last candidate (as
# real lists of 200 have) keeps the ones under test off the floor.
_FLOOR = _row("floor", "zz/floor.txt", language="text")


def _vec(*rows: dict) -> list[dict]:
    """Vector-side hits in rank order, distances rising from 0.1 by 0.1."""
    hits = [{**r, "_distance": 0.1 * (i + 1)} for i, r in enumerate(rows)]
    return [*hits, {**_FLOOR, "_distance": 1.0}]


def _txt(*rows: dict) -> list[dict]:
    """Full-text hits in rank order, BM25 scores falling from 10 by 1."""
    return [*({**r, "_score": 10.0 - i} for i, r in enumerate(rows)), {**_FLOOR, "_score": 0.5}]


def ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows if r["id"] != "floor"]


def test_query_shape():
    s = analyze("Rack::Response")
    assert s.symbols == (("Rack", "Response"),) and s.symbol_like
    assert "response" in s.names and "rackresponse" in s.qualified
    s = analyze("how are routes registered")
    assert not s.symbols and not s.symbol_like
    assert s.words == ("rout", "register")  # stop words gone, stems kept
    assert analyze("where is parse_config called").names == {"parseconfig"}
    assert analyze("Depends").symbol_like
    assert analyze("unit tests for the parser").wants_tests
    assert definition_names("validateToken and HTTPServer") == ["HTTPServer", "validateToken"]
    assert stem("routers") == "rout" and stem("handling") == "handl"


def test_agreement_of_both_sides_wins():
    a, b, c = _row("a", "a.py"), _row("b", "b.py"), _row("c", "c.py")
    out = rank(_vec(a, b, c), _txt(c, b), "query words")
    assert ids(out)[:2] in (["b", "c"], ["c", "b"])
    assert ids(out)[-1] == "a"  # only one side had it, and last there


def test_symbol_queries_lean_on_the_lexical_side():
    v, t = _row("v", "v.py"), _row("t", "t.py")
    # v is first by meaning, t first by words: a name trusts the words ...
    assert ids(rank(_vec(v, t), _txt(t, v), "parse_config", rules=frozenset()))[0] == "t"
    # ... a question in words trusts the meaning (equal weight: the vector side's
    # min-max spread is the larger here).
    assert ids(rank(_vec(v, t), _txt(t, v), "read settings file", rules=frozenset()))[0] == "v"


def test_definition_rule_ranks_the_definition_first_and_injects_it():
    caller = _row("call", "use.py", symbol="main")
    definition = _row("def", "loader.py", 10, 30, symbol="Loader.parse_config")
    hits = _txt(caller, definition)
    assert ids(rank([], hits, "parse_config"))[0] == "def"
    assert ids(rank([], hits, "parse_config", rules=ALL - {"definition"}))[0] == "call"
    # Neither side retrieved it: the lookup injects it, first.
    out = rank([], _txt(caller), "parse_config", definitions=[definition])
    assert ids(out) == ["def", "call"]
    # An injected row that does not define the name is ignored.
    assert ids(rank([], _txt(caller), "parse_config", definitions=[_row("x", "x.py")])) == ["call"]


def test_file_name_rule_lifts_files_the_query_names():
    other = _row("o", "src/TreeModel.java", language="java")
    named = _row("n", "src/JsonObject.java", language="java")
    q = "json object with named fields"
    assert ids(rank(_vec(other, named), [], q))[0] == "n"
    assert ids(rank(_vec(other, named), [], q, rules=ALL - {"file_name"}))[0] == "o"
    # mod.rs / index.ts are named by their folder.
    generic = _row("g", "src/extract/helpers.rs", language="rust")
    index = _row("i", "src/routing/mod.rs", language="rust")
    assert ids(rank(_vec(generic, index), [], "how routers are nested"))[0] == "i"


def test_directory_rule_lifts_files_in_named_folders():
    a = _row("a", "core/util.py")
    b = _row("b", "security/util2.py")
    q = "security"
    assert ids(rank(_vec(a, b), [], q, rules=frozenset({"directory"})))[0] == "b"
    assert ids(rank(_vec(a, b), [], q, rules=frozenset()))[0] == "a"


def test_coherence_lifts_a_file_with_several_matches():
    lone = _row("lone", "lone.py")
    parts = [_row(f"p{i}", "many.py", 10 * i + 1, 10 * i + 5) for i in range(4)]
    hits = _vec(lone, *parts)
    assert ids(rank(hits, [], "q", rules=frozenset({"coherence"})))[0] == "p0"
    assert ids(rank(hits, [], "q", rules=frozenset()))[0] == "lone"


def test_file_decay_spreads_the_top_over_files():
    same = [_row(f"s{i}", "big.py", 10 * i + 1, 10 * i + 5) for i in range(3)]
    other = _row("o", "other.py")
    hits = _vec(*same, other)
    assert ids(rank(hits, [], "q", rules=frozenset({"file_decay"})))[:2] == ["s0", "o"]
    assert ids(rank(hits, [], "q", rules=frozenset()))[:2] == ["s0", "s1"]


def test_docs_and_data_rank_below_code_unless_asked_for():
    doc = _row("d", "README.md", language="markdown")
    code = _row("c", "app.py")
    assert ids(rank(_vec(doc, code), [], "install steps"))[0] == "c"
    assert ids(rank(_vec(doc, code), [], "install steps", rules=ALL - {"demote_docs"}))[0] == "d"
    assert ids(rank(_vec(doc, code), [], "install steps in the docs"))[0] == "d"


def test_tests_and_examples_rank_below_code_unless_asked_for():
    test = _row("t", "tests/test_app.py")
    code = _row("c", "app2.py")
    example = _row("e", "examples/demo.py")
    assert ids(rank(_vec(test, code), [], "retry logic"))[0] == "c"
    assert ids(rank(_vec(test, code), [], "retry logic", rules=ALL - {"demote_tests"}))[0] == "t"
    assert ids(rank(_vec(test, code), [], "retry logic tests"))[0] == "t"
    assert ids(rank(_vec(example, code), [], "retry logic"))[0] == "c"


def test_overlapping_chunks_of_one_file_collapse():
    vec = _vec(_row("a", "f.py", 1, 10), _row("b", "f.py", 5, 15), _row("c", "f.py", 20, 30))
    assert ids(rank(vec, [], "q")) == ["a", "c"]


def test_rank_does_not_modify_its_inputs():
    row = _row("a", "a.py")
    hits = _vec(row)
    rank(hits, [], "q")
    assert "score" not in hits[0] and "_v" not in hits[0]


def test_identifier_splitting_for_full_text() -> None:
    assert split_identifier("parseHTTPRequest_v2") == ["parse", "HTTP", "Request", "v", "2"]
    st = search_text("src/jwt_utils.py", "TokenValidator.validate", "def validateToken(): pass")
    assert "validate" in st.split() and "token" in st.split() and "jwt" in st.split()


def test_glob_translation() -> None:
    assert glob_to_like("*.py") == "%.py"
    assert glob_to_like("src/**/*.py") == "src/%.py"
    assert glob_to_like("a_b?.py") == "a\\_b_.py"


def test_filter_sql() -> None:
    assert Filter().to_sql() is None
    assert Filter(language="Python", skipped=False).to_sql() == (
        "language = 'python' AND skip_reason = ''"
    )
    assert Filter(glob="*.py", skipped=True).to_sql() == (
        "path LIKE '%.py' ESCAPE '\\' AND skip_reason != ''"
    )
    assert Filter(path_prefix="a_b/it's%").to_sql() == ("path LIKE 'a\\_b/it''s\\%%' ESCAPE '\\'")
    assert Filter(path="x.py", embedded=False).to_sql() == "path = 'x.py' AND has_vector = false"


def test_match_line_points_at_the_densest_window():
    from codeindex.ranking import match_line

    text = "\n".join(
        ["def handler(request):"]
        + [f"    step_{i}()" for i in range(10)]
        + ["    token = parse_token(request)", "    validate(token)"]
        + [f"    after_{i}()" for i in range(10)]
    )
    line = match_line(text, 100, "validate the token")
    assert 106 <= line <= 111 and line + 5 >= 112  # the window shows lines 111-112
    assert match_line(text, 100, "nothing here matches") == 100
    assert match_line("short\nchunk", 7, "chunk") == 7


def test_auxiliary_code_ranks_below_product_code():
    code = _row("c", "pkg/client.py")
    for aux in (
        "vendor/lib/client.py",
        "pkg/_compat/client2.py",
        "legacy/client3.py",
        ".github/scripts/client4.py",
        "types/client5.d.ts",
        "pkg/client6.pyi",
    ):
        other = _row("a", aux)
        assert ids(rank(_vec(other, code), [], "http client"))[0] == "c", aux
        assert ids(rank(_vec(other, code), [], "http client", rules=frozenset()))[0] == "a"


def test_rank_limit_and_text_from_either_side():
    rows = [_row(f"r{i}", f"f{i}.py") for i in range(5)]
    assert len(ids(rank(_vec(*rows), [], "q", limit=3))) == 3
    with_text = {**_row("a", "a.py"), "text": "def a(): pass"}
    bare = {k: v for k, v in with_text.items() if k != "text"}  # read without its text
    out = rank(_vec(bare), _txt(with_text), "q")
    assert next(r for r in out if r["id"] == "a")["text"] == "def a(): pass"


def test_background_side_hands_back_its_value_or_error():
    from codeindex.service import _Background

    assert _Background(lambda: 42).result() == 42

    def boom() -> None:
        raise ValueError("words side failed")

    with pytest.raises(ValueError, match="words side failed"):
        _Background(boom).result()
