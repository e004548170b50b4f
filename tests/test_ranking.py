from __future__ import annotations

from codeindex.ranking import fuse
from codeindex.storage.schema import glob_to_like, search_text, split_identifier


def _row(cid: str, path: str = "a.py", start: int = 1, end: int = 5, symbol: str = "") -> dict:
    return {
        "id": cid,
        "path": path,
        "start_line": start,
        "end_line": end,
        "symbol": symbol,
        "text": "",
    }


def test_rrf_rewards_agreement() -> None:
    vec = [_row("a", "a.py"), _row("b", "b.py"), _row("c", "c.py")]
    txt = [_row("c", "c.py"), _row("b", "b.py")]
    out = fuse(vec, txt, "query words")
    assert {r["id"] for r in out[:2]} == {"b", "c"}
    assert out[-1]["id"] == "a"  # only one list had it


def test_symbol_match_boost() -> None:
    vec = [_row("x", "x.py", symbol="helper"), _row("y", "y.py", symbol="parse_config")]
    out = fuse(vec, [], "parse_config")
    assert out[0]["id"] == "y"


def test_overlapping_chunks_of_one_file_collapse() -> None:
    vec = [_row("a", "f.py", 1, 10), _row("b", "f.py", 5, 15), _row("c", "f.py", 20, 30)]
    assert [r["id"] for r in fuse(vec, [], "q")] == ["a", "c"]


def test_identifier_splitting_for_full_text() -> None:
    assert split_identifier("parseHTTPRequest_v2") == ["parse", "HTTP", "Request", "v", "2"]
    st = search_text("src/jwt_utils.py", "TokenValidator.validate", "def validateToken(): pass")
    assert "validate" in st.split() and "token" in st.split() and "jwt" in st.split()


def test_glob_translation() -> None:
    assert glob_to_like("*.py") == "%.py"
    assert glob_to_like("src/**/*.py") == "src/%.py"
    assert glob_to_like("a_b?.py") == "a\\_b_.py"
