"""LanceDB storage: the only package that imports lancedb."""

from codeindex.storage.cursor import decode_cursor, encode_cursor
from codeindex.storage.store import FileSnapshot, Store, index_exists

__all__ = ["FileSnapshot", "Store", "decode_cursor", "encode_cursor", "index_exists"]
