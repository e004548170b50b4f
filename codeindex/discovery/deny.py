"""What discovery never indexes, whatever the ignore files say.

The security deny list ``DENY_PATTERNS`` (applied at any depth; no ``!negation``
re-includes it), any ``.git`` entry, and ``settings.index_dir`` when it lies inside the
root. Pure path logic: no I/O.
"""

from __future__ import annotations

import os

from pathspec import GitIgnoreSpec

from codeindex.config import Settings

# Gitignore syntax, matched against the whole relative path, so a pattern without a slash
# applies at any depth and a directory pattern hides everything beneath it. Checked
# separately from ignore files so that no ``!negation`` can re-include these.
DENY_PATTERNS: tuple[str, ...] = (
    # environment files
    ".env",
    ".env.*",
    ".envrc",
    # private keys and certificates / key stores
    "*.pem",
    "*.key",
    "*.ppk",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    # tool credentials
    ".npmrc",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "secrets.*",
    "*.tfstate",
    "*.tfstate.*",
    # credential directories
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/",
    ".kube/",
    ".azure/",
)
_DENY_SPEC = GitIgnoreSpec.from_lines(DENY_PATTERNS)


def within(path: str, root: str) -> bool:
    """True if absolute ``path`` is ``root`` or lies beneath it (both already resolved)."""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def index_dir_rels(settings: Settings) -> tuple[str, ...]:
    """Relative POSIX paths of the index directory, if it lies inside the root."""
    out: list[str] = []
    pairs = (
        (str(settings.index_dir), str(settings.root)),
        (os.path.realpath(settings.index_dir), os.path.realpath(settings.root)),
    )
    for idx, root in pairs:
        if idx != root and within(idx, root):
            rel = os.path.relpath(idx, root).replace(os.sep, "/")
            if rel not in out:
                out.append(rel)
    return tuple(out)


def always_excluded(rel: str, is_dir: bool, index_rels: tuple[str, ...] = ()) -> bool:
    """True for deny-listed paths, anything in a ``.git`` entry, and the index directory.

    Checks every component of ``rel`` (no ignore files involved, no I/O).
    """
    if not rel:
        return False
    parts = rel.split("/")
    if ".git" in parts:
        return True
    for idx in index_rels:
        if rel == idx or rel.startswith(idx + "/"):
            return True
    return bool(_DENY_SPEC.match_file(rel + ("/" if is_dir else "")))
