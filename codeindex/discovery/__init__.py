"""Discovery: stream the files under a root that are worth indexing (see ``walk.py``)."""

from codeindex.discovery.walk import (
    DENY_PATTERNS,
    GENERATED_NAMES,
    IGNORE_FILENAMES,
    SNIFF_BYTES,
    IgnoreMatcher,
    check_path,
    generated_reason,
    resolve_inside_root,
    walk,
)

__all__ = [
    "DENY_PATTERNS",
    "GENERATED_NAMES",
    "IGNORE_FILENAMES",
    "SNIFF_BYTES",
    "IgnoreMatcher",
    "check_path",
    "generated_reason",
    "resolve_inside_root",
    "walk",
]
