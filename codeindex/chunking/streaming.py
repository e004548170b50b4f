"""Streaming line-window chunker for files too big to hold in memory.

:func:`chunk_stream` yields exactly the chunks that
``line_chunks(path, iter_lines(decode(whole_bytes)), ...)`` yields, while holding at
most one read buffer, one partial line of at most ``line_limit + 1`` characters, and one
pending window — whatever the file or line length (a 2 GB minified line included).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from codeindex.chunking.lines import BOM, LineWindower
from codeindex.chunking.tokens import TokenCounter
from codeindex.config import Settings
from codeindex.types import Chunk


def chunk_stream(
    path: str,
    stream: BinaryIO,
    language: str,
    settings: Settings,
    count_tokens: TokenCounter | None = None,
) -> Iterator[Chunk]:
    """Chunk a binary stream with ``stream.read(settings.read_buffer_bytes)`` blocks.

    Decoding is incremental UTF-8 with ``errors="replace"`` (a multi-byte character or
    an invalid sequence split across blocks decodes as it would whole), and one leading
    BOM is dropped. The stream is read to its end but never closed here.
    """
    windower = LineWindower(path, language, settings, count_tokens)
    limit = windower.line_limit
    block_size = max(1, settings.read_buffer_bytes)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    pending = ""  # the current line's text not yet handed to the windower
    long_line = False  # pieces of the current line were already emitted
    number = 1
    at_start = True
    while True:
        block = stream.read(block_size)
        final = not block
        text = decoder.decode(block, final)
        if at_start and text:
            at_start = False
            if text.startswith(BOM):
                text = text[1:]
        pos = 0
        while True:
            nl = text.find("\n", pos)
            if nl < 0:
                break
            if pending:
                line = pending + text[pos:nl]
                pending = ""
                if line.endswith("\r"):
                    line = line[:-1]
            else:  # the common case: slice once, without the CR
                line = text[pos : nl - 1 if nl > pos and text[nl - 1] == "\r" else nl]
            pos = nl + 1
            if long_line:
                # The rest of a line already being cut: continue the same piece grid.
                long_line = False
                for i in range(0, len(line), limit):
                    yield from windower.add_piece(number, line[i : i + limit])
            else:
                yield from windower.add_line(number, line)
            number += 1
        if pos < len(text):
            pending = pending + text[pos:] if pending else text[pos:]
            # Cut the line now instead of accumulating it. With ≥ limit + 2 characters
            # and no "\n" yet, the whole line is surely longer than the limit (at most
            # one trailing "\r" can still be dropped), and the first `limit` characters
            # cannot be that "\r" — so these pieces equal the whole-file ones.
            if len(pending) >= limit + 2:
                long_line = True
                i = 0
                while len(pending) - i >= limit + 2:
                    yield from windower.add_piece(number, pending[i : i + limit])
                    i += limit
                pending = pending[i:]
        if final:
            break
    # A final line without "\n" (its "\r", if any, is content per the line model).
    if long_line:
        for i in range(0, len(pending), limit):
            yield from windower.add_piece(number, pending[i : i + limit])
    elif pending:
        yield from windower.add_line(number, pending)
    yield from windower.flush()
