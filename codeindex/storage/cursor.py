"""Opaque pagination cursors: base64url JSON signed with the index's own key.

A cursor names what it pages (``kind``), a fingerprint of the request it belongs to
(query + filters), an offset, and the table version it was cut from. Anything else
(hand-edited, truncated, from another query, from another index) is rejected with
BadCursorError.

The signature is a keyed BLAKE2b over the payload. The key is 32 random bytes kept in
the index directory (:func:`load_key`), so a cursor cannot be forged from the source
code, and a cursor of one index is refused by every other. Even a correctly signed
cursor has its numbers range-checked: the key protects against forgery, the checks
against everything else (a leaked key file, a bug that signs a bad offset).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from codeindex.errors import BadCursorError, CodeIndexError

log = logging.getLogger(__name__)

_HELP = "drop the cursor to start again from the first page"
KEY_FILE = "cursor.key"
KEY_BYTES = 32
MAX_CURSOR_CHARS = 512  # a real cursor is ~120 characters; anything longer is refused unread
# Lance takes offsets and versions as 64-bit integers: larger numbers are refused here
# rather than overflowing inside it.
MAX_INT64 = 2**63 - 1


def _sum(payload: bytes, key: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16, key=key).hexdigest()


def encode_cursor(kind: str, fingerprint: str, offset: int, version: int, key: bytes) -> str:
    """A cursor for page ``offset`` of a ``kind`` request, signed with ``key``."""
    payload = json.dumps(
        {"k": kind, "f": fingerprint, "o": offset, "v": version}, separators=(",", ":")
    ).encode()
    token = payload + b"." + _sum(payload, key).encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(
    cursor: str, kind: str, fingerprint: str, key: bytes, *, max_offset: int = MAX_INT64
) -> tuple[int, int]:
    """Return (offset, version) of a cursor signed with ``key``.

    Raises BadCursorError with an actionable message when the cursor is over
    MAX_CURSOR_CHARS, not signed with ``key`` (edited, forged, from another index),
    for another command or request, or carries an offset outside 0..``max_offset`` or
    a version outside 0..MAX_INT64. Never raises anything else.
    """
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursorError(f"malformed cursor; {_HELP}.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, _, check = raw.rpartition(b".")
        # compare_digest: the time taken says nothing about how much of a guess matched.
        if not payload or not secrets.compare_digest(_sum(payload, key).encode(), check):
            raise ValueError("signature")
        data: dict[str, Any] = json.loads(payload)
        offset, version = data["o"], data["v"]
        if type(offset) is not int or type(version) is not int:  # not bool, float or str
            raise TypeError("numbers")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadCursorError(f"malformed cursor {cursor[:40]!r}; {_HELP}.") from None
    if data.get("k") != kind:
        raise BadCursorError(f"this cursor belongs to another command; {_HELP}.")
    if data.get("f") != fingerprint:
        raise BadCursorError(
            "this cursor was issued for a different query or filters; repeat the "
            f"original request to continue, or {_HELP}."
        )
    if not 0 <= offset <= max_offset:
        raise BadCursorError(f"this cursor's offset {offset} is outside 0..{max_offset}; {_HELP}.")
    if not 0 <= version <= MAX_INT64:
        raise BadCursorError(f"this cursor's version {version} is outside 0..{MAX_INT64}; {_HELP}.")
    return offset, version


def load_key(index_dir: Path) -> bytes:
    """The index's cursor key: ``<index_dir>/cursor.key``, created on first call.

    The file is written whole to a private temp file (mode 0600) and then hard-linked
    into place: the link is atomic and fails when the name exists, so a reader never
    sees half a key, and of two processes racing to create it both end with the
    winner's key. Raises CodeIndexError when the file exists but is not a key (someone
    else wrote it). Where the key cannot be stored (a read-only index directory, a
    filesystem without hard links) this process gets a key of its own, with a warning:
    its cursors then work within this process alone.
    """
    path = Path(index_dir) / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd, tmp = tempfile.mkstemp(dir=index_dir, prefix=".cursor-key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        return _read_key(path)  # another process won the race: use its key
    except OSError as exc:  # a read-only index, or a filesystem without hard links
        log.warning("cannot write %s (%s); cursors work within this process only", path, exc)
    return key


def _read_key(path: Path) -> bytes:
    """The key in ``path``; FileNotFoundError when there is none yet."""
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise CodeIndexError(
            f"{path} is not a cursor key ({len(key)} bytes, expected {KEY_BYTES}); delete "
            "it (a new one is made, and cursors issued so far stop working)."
        )
    return key


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=8).hexdigest()
