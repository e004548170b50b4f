"""Machine-written text: the rules that mark a file as generated (pure; no I/O).

Machine-written text is noise in search results and can cost most of the embedding
time (in one real repository a uv.lock was 31% of all chunks). Every rule that marks a
file as generated lives in this module: first by name (no I/O), then by the shape of
the head already sniffed for NUL bytes (never more than SNIFF_BYTES). A match is
yielded as Skipped(GENERATED); ``settings.index_generated`` turns all of them off and a
``!pattern`` in a .codeindexignore brings back the files it decides (``classify.py``
applies both).
"""

from __future__ import annotations

import fnmatch
import re

from codeindex.types import Skipped, SkipReason

# Bytes read from the head of a file to detect binaries (git uses the same heuristic).
SNIFF_BYTES = 8192

# Base-name shapes (glob syntax, matched case-insensitively against the last path
# component) and the reason each one is reported under.
GENERATED_NAMES: tuple[tuple[str, str], ...] = (
    # Dependency lock files: resolver output, thousands of near-identical entries (uv,
    # Cargo, poetry, Gemfile, yarn, composer, Pipfile, flake, pdm, bun, deno, mix ...).
    ("*.lock", "lock file"),
    ("*.lockfile", "lock file"),  # gradle.lockfile
    ("package-lock.json", "lock file"),  # npm
    ("npm-shrinkwrap.json", "lock file"),  # npm
    ("pnpm-lock.yaml", "lock file"),
    ("packages.lock.json", "lock file"),  # NuGet
    ("package.resolved", "lock file"),  # SwiftPM
    (".terraform.lock.hcl", "lock file"),
    ("go.sum", "lock file"),  # Go module checksums
    ("go.work.sum", "lock file"),
    # Minified bundles: whole programs squeezed onto a few lines.
    ("*.min.js", "minified"),
    ("*.min.mjs", "minified"),
    ("*.min.css", "minified"),
    ("*-min.js", "minified"),
    ("*-min.css", "minified"),
    # Source maps (app.js.map, site.css.map): JSON of base64 VLQ position mappings.
    ("*.map", "source map"),
    # SVG: XML of path coordinates, not code anyone searches for.
    ("*.svg", "svg"),
)
_GENERATED_NAME_RES = tuple(
    (re.compile(fnmatch.translate(glob)), glob, why) for glob, why in GENERATED_NAMES
)
# All of them in one regex: a name that matches none (nearly all) costs one call.
_GENERATED_NAME_ANY = re.compile("|".join(fnmatch.translate(g) for g, _why in GENERATED_NAMES))

# Minified text without a telling name (dist/app.js, one-line JSON dumps): the sniffed
# head averages more than MINIFIED_AVG_LINE_BYTES bytes per line. Hand-written code and
# prose average well under 100 (an embedded base64 blob in a source file barely moves
# it); a head shorter than _MINIFIED_MIN_HEAD is not judged, so a small file with a long
# line is kept.
MINIFIED_AVG_LINE_BYTES = 500
_MINIFIED_MIN_HEAD = 4096

# A header saying a tool wrote the file: among the comment lines before the first line
# of code (at most _MARKER_LINES lines), the "@generated" tag (Cargo, Buck, Relay) or a
# line with "generated" and "do not edit"/"do not modify" (Go's "// Code generated ...
# DO NOT EDIT.", protoc, most code generators). Code that merely mentions the phrase,
# or a docstring, is not a comment before the first line of code, so it is kept.
_MARKER_LINES = 40
_LINE_COMMENTS = (b"#", b"//", b"--", b";", b"%", b"<?xml")  # <?xml: a prolog, not code
_BLOCK_COMMENTS = ((b"/*", b"*/"), (b"<!--", b"-->"), (b"{-", b"-}"), (b"(*", b"*)"))


def generated_by_name(rel: str) -> str | None:
    name = rel.rpartition("/")[2].lower()
    if not _GENERATED_NAME_ANY.match(name):
        return None
    for regex, glob, why in _GENERATED_NAME_RES:
        if regex.match(name):
            return f"{why} ({glob})"
    return None


def _minified(head: bytes) -> str | None:
    if len(head) < _MINIFIED_MIN_HEAD:
        return None
    lines = head.count(b"\n") + (not head.endswith(b"\n"))  # a cut last line counts
    average = len(head) // lines
    if average <= MINIFIED_AVG_LINE_BYTES:
        return None
    return f"minified ({average} bytes per line on average in the first {len(head)} bytes)"


def _generated_marker(head: bytes) -> str | None:
    if b"generated" not in head.lower():  # in every marker: a fast pre-check
        return None
    closing = b""  # end of the block comment we are in, if any
    lines = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", _MARKER_LINES)
    for number, line in enumerate(lines[:_MARKER_LINES], start=1):
        text = line.strip()
        if closing:
            if closing in text:
                closing = b""
        elif not text:
            continue
        else:
            for opening, end in _BLOCK_COMMENTS:
                if text.startswith(opening):
                    closing = b"" if end in text[len(opening) :] else end
                    break
            else:
                if not text.startswith(_LINE_COMMENTS):
                    return None  # the first line of code: the header is over
        low = text.lower()
        if b"@generated" in low or (
            b"generated" in low and (b"do not edit" in low or b"do not modify" in low)
        ):
            return f"generated marker (line {number}: {text[:80].decode('utf-8', 'replace')})"
    return None


def generated_by_head(head: bytes) -> str | None:
    """Why a file whose first bytes are ``head`` looks machine-written, or None."""
    return _minified(head) or _generated_marker(head)


def generated_reason(rel_path: str, head: bytes | None = None) -> str | None:
    """Why a file looks machine-written ("lock file (*.lock)", "minified (...)", ...).

    Judges the name of ``rel_path`` and, when given, ``head`` (the file's first
    SNIFF_BYTES; longer input is cut there). None when no rule matches. Pure: no I/O, and
    neither settings nor ignore files are consulted (walk() does that).
    """
    why = generated_by_name(rel_path)
    if why is None and head is not None:
        why = generated_by_head(head[:SNIFF_BYTES])
    return why


def generated_skip(rel: str, why: str) -> Skipped:
    name = re.sub(r"([*?\[\\])", r"\\\1", rel.rpartition("/")[2])
    return Skipped(
        rel,
        SkipReason.GENERATED,
        f"{why}; to index it add '!{name}' to .codeindexignore or set index_generated = true",
    )
