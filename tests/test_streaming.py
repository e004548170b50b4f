"""Streaming chunker: identical to the whole-file line chunker, in bounded memory."""

from __future__ import annotations

import io
import random
import tracemalloc
from pathlib import Path

import pytest

from codeindex.chunking import TokenCounter, chunk_stream, decode, iter_lines, line_chunks
from codeindex.config import Settings
from codeindex.types import Chunk

BOM = b"\xef\xbb\xbf"
# Small limits make every boundary case (piece grid, windows, tokens) frequent.
SMALL = Settings(
    root=Path("."),
    index_dir=Path(".codeindex"),
    max_chunk_lines=4,
    max_chunk_chars=60,
    max_line_chars=16,
    max_chunk_tokens=20,
)
DEFAULT = Settings(root=Path("."), index_dir=Path(".codeindex"))
BUFFERS = [1, 2, 3, 7, 64, 1000]


def whole(data: bytes, settings: Settings, counter: TokenCounter | None = None) -> list[Chunk]:
    return list(line_chunks("f", iter_lines(decode(data)), "text", settings, counter))


def streamed(
    data: bytes, settings: Settings, buffer: int, counter: TokenCounter | None = None
) -> list[Chunk]:
    settings = settings.replace(read_buffer_bytes=buffer)
    return list(chunk_stream("f", io.BytesIO(data), "text", settings, counter))


def assert_same(data: bytes, settings: Settings, counter: TokenCounter | None = None) -> None:
    expected = whole(data, settings, counter)
    for buffer in BUFFERS:
        got = streamed(data, settings, buffer, counter)
        assert got == expected, f"read_buffer_bytes={buffer}, data={data[:200]!r}"


ATOMS = [
    b"foo",
    b"bar_baz",
    b"x",
    b" ",
    b"   ",
    b"\t",
    b"\n",
    b"\n",
    b"\r\n",
    b"\r\n",
    b"\r",
    b"(",
    b");",
    b"{}",
    "é".encode(),
    "€".encode(),
    "𝄞".encode(),
    "日本語".encode(),
    b"\xff",  # invalid start byte
    b"\xc3",  # truncated 2-byte sequence
    b"\xe2\x82",  # truncated 3-byte sequence
    b"\xf0\x9f\x98",  # truncated 4-byte sequence
    b"\xed\xa0\x80",  # encoded surrogate: invalid in UTF-8
    BOM,  # a BOM after the start is content
    b"\x00",
]


def random_data(rng: random.Random) -> bytes:
    parts = [BOM] if rng.random() < 0.2 else []
    for _ in range(rng.randint(0, 300)):
        roll = rng.random()
        if roll < 0.05:  # an over-long line, sometimes ending right at a limit edge
            length = rng.choice([14, 15, 16, 17, 18, 31, 32, 33, rng.randint(40, 400)])
            parts.append(rng.choice([b"a", b"ab;", b" ", "é".encode()]) * length)
            parts.append(rng.choice([b"\n", b"\r\n", b"\r", b"\r\r\n", b""]))
        else:
            parts.append(rng.choice(ATOMS))
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(40))
def test_stream_equals_whole_random(seed: int) -> None:
    data = random_data(random.Random(seed))
    assert_same(data, SMALL)
    assert_same(data, DEFAULT.replace(max_line_chars=50))


@pytest.mark.parametrize("seed", range(8))
def test_stream_equals_whole_with_strict_counter(seed: int) -> None:
    def strict(text: str) -> int:  # not additive over lines: exercises re-splitting
        return len(text) // 2 + text.count(";")

    data = random_data(random.Random(1000 + seed))
    assert_same(data, SMALL, strict)


EDGE_CASES = [
    b"",
    b"\n",
    b"\r\n",
    b"\r",
    b"abc",
    b"abc\r",
    b"abc\r\r\n",
    b"\n\n\nabc\n\n",
    BOM,
    BOM + b"\n",
    BOM + b"x\r\ny",
    BOM + BOM + b"x",
    b"\xef\xbb",  # a truncated BOM is invalid bytes, not a BOM
    b"\xef\xbbx\n",
    b"x" * 16 + b"\r\n" + b"y",  # exactly the line limit, CRLF
    b"x" * 15 + b"\r\n",
    b"x" * 17 + b"\r\n",
    b"x" * 16 + b"\r",  # no final newline: the CR is content
    b"x" * 17 + b"\r",
    b"x" * 18 + b"\r\r\n",
    b"x" * 32 + b"\n" + b"x" * 33,
    b" " * 50 + b"\nabc\n",  # whitespace-only pieces are dropped
    b"ab" * 40 + b"\r\n" + b"cd" * 8,
    "é".encode() * 40 + b"\n" + "𝄞".encode() * 9,  # multi-byte across every boundary
    b"\xe2\x82" * 30 + b"\n\xff" * 10,  # invalid sequences across every boundary
    b"a;" * 500,  # one long minified line, no newline
]


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_stream_equals_whole_edge_cases(data: bytes) -> None:
    assert_same(data, SMALL)
    assert_same(data, DEFAULT)


def test_stream_chunks_are_line_numbered_and_bounded() -> None:
    data = BOM + b"alpha\r\n\r\nbeta\xff\n" + b"m" * 40 + b"\ngamma"
    chunks = streamed(data, SMALL, 7)
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 3), (4, 4), (4, 4), (4, 4), (5, 5)]
    assert chunks[0].text == "alpha\n\nbeta\ufffd"
    assert [c.text for c in chunks[1:4]] == ["m" * 16, "m" * 16, "m" * 8]
    assert streamed(b"", SMALL, 7) == []


def test_stream_reads_in_buffer_sized_blocks_and_leaves_stream_open() -> None:
    class Recorder(io.BytesIO):
        sizes: list[int] = []

        def read(self, size: int | None = -1) -> bytes:
            self.sizes.append(-1 if size is None else size)
            return super().read(size)

    stream = Recorder(b"line one\nline two\n" * 100)
    settings = DEFAULT.replace(read_buffer_bytes=64)
    assert list(chunk_stream("f", stream, "text", settings))
    assert set(stream.sizes) == {64}
    assert not stream.closed


def test_memory_stays_bounded_on_a_200mb_file_with_a_50mb_line(tmp_path: Path) -> None:
    """200 MB with a 50 MB single line streams with a small, fixed peak."""
    mib = 1 << 20
    path = tmp_path / "big.js"
    # Lines of 30 to 990 bytes (~500 on average): tracemalloc's cost is per allocation,
    # so this keeps the test fast while still streaming ~300k lines through windows.
    filler = b"lorem ipsum dolor sit amet, " * 40
    normal = b"".join(
        b"    value_%d = compute(alpha, beta) + offset;%s\r\n" % (i, filler[: i * 37 % 950])
        for i in range(1000)
    )
    minified = b"var a=function(b){return b+1};" * (mib // 30)
    with path.open("wb") as f:
        for _ in range(75 * mib // len(normal)):
            f.write(normal)
        for _ in range(50):  # one ~50 MB line: no newline inside
            f.write(minified)
        f.write(b"\n")
        for _ in range(75 * mib // len(normal)):
            f.write(normal)
    size = path.stat().st_size
    assert size > 195 * mib

    def cheap(text: str) -> int:
        # The point here is memory, not token counting; a cheap counter keeps the test fast.
        return len(text) // 4

    settings = DEFAULT.replace(read_buffer_bytes=mib)
    count = 0
    last_line = 0
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            for chunk in chunk_stream("big.js", stream, "javascript", settings, cheap):
                count += 1
                last_line = chunk.end_line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        path.unlink()  # pytest keeps recent tmp dirs; do not leave 200 MB behind
    assert count > 50_000
    assert last_line == 2 * (75 * mib // len(normal)) * 1000 + 1
    assert peak < 16 * mib, f"peak traced memory {peak / mib:.1f} MiB"
