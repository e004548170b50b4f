"""LanceDB storage: the only package that imports lancedb."""

from codeindex.storage.cursor import decode_cursor, encode_cursor
from codeindex.storage.store import Store, index_exists

__all__ = ["Store", "decode_cursor", "encode_cursor", "index_exists"]
