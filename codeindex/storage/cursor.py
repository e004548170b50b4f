"""Opaque pagination cursors: base64url JSON with a checksum.

A cursor names what it pages (``kind``), a fingerprint of the request it belongs to
(query + filters), an offset, and the table version it was cut from. Anything else
(hand-edited, truncated, from another query) is rejected with BadCursorError.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from codeindex.errors import BadCursorError

_HELP = "drop the cursor to start again from the first page"


def _sum(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=6, key=b"codeindex-cursor").hexdigest()


def encode_cursor(kind: str, fingerprint: str, offset: int, version: int) -> str:
    payload = json.dumps(
        {"k": kind, "f": fingerprint, "o": offset, "v": version}, separators=(",", ":")
    ).encode()
    token = payload + b"." + _sum(payload).encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, fingerprint: str) -> tuple[int, int]:
    """Return (offset, version) or raise BadCursorError with an actionable message."""
    if not isinstance(cursor, str) or len(cursor) > 512:
        raise BadCursorError(f"malformed cursor; {_HELP}.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, _, check = raw.rpartition(b".")
        if not payload or _sum(payload).encode() != check:
            raise ValueError("checksum")
        data: dict[str, Any] = json.loads(payload)
        offset, version = int(data["o"]), int(data["v"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadCursorError(f"malformed cursor {cursor[:40]!r}; {_HELP}.") from None
    if data.get("k") != kind:
        raise BadCursorError(f"this cursor belongs to another command; {_HELP}.")
    if data.get("f") != fingerprint:
        raise BadCursorError(
            "this cursor was issued for a different query or filters; repeat the "
            f"original request to continue, or {_HELP}."
        )
    if offset < 0:
        raise BadCursorError(f"malformed cursor; {_HELP}.")
    return offset, version


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=8).hexdigest()
