"""LanceDB storage: the only package that imports lancedb."""

import os


def _bound_lance_io_threads() -> None:
    """Give Lance's I/O runtimes as many threads as cores, at most 4, unless the user
    set ``LANCE_IO_THREADS``.

    The process holds two Lance runtimes (LanceDB's and pylance's, see
    ``maintenance``), each with its own I/O pool. With Lance's default pools the
    thread count climbed to 121 while a 200,000-file tree was embedded (fake model), and
    each thread keeps its own stack and buffers: peak RSS 538 MiB, against 477 MiB and
    39 threads with 2 I/O threads. Lance reads the variable when it starts a runtime,
    so it is set before lancedb is first imported.
    """
    os.environ.setdefault("LANCE_IO_THREADS", str(max(1, min(4, os.cpu_count() or 1))))


_bound_lance_io_threads()

from codeindex.storage.cursor import decode_cursor, encode_cursor  # noqa: E402
from codeindex.storage.filters import Filter  # noqa: E402
from codeindex.storage.store import FileSnapshot, Store, index_exists  # noqa: E402

__all__ = ["FileSnapshot", "Filter", "Store", "decode_cursor", "encode_cursor", "index_exists"]
