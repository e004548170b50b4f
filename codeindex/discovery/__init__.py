"""Discovery: stream the files under a root that are worth indexing.

``walk()`` yields metadata only (``SourceFile``) or a reason a file was seen but not
indexed (``Skipped``). It never reads file contents except an 8 KiB sniff of each
regular file (for NUL bytes and the shape of machine-written text), which is not
retained. Per-file problems become ``Skipped`` values, never exceptions.

Machine-written text (lock files, minified bundles, source maps, SVGs, files whose
header says a tool wrote them) is yielded as ``Skipped(GENERATED)`` unless
``settings.index_generated`` is set or a ``!negation`` in a ``.codeindexignore`` is the
pattern that decides the file (see ``GENERATED_NAMES`` and ``generated_reason``).

What is never yielded at all (not even as ``Skipped``):

* paths ignored by nested ``.gitignore`` / ``.codeindexignore`` files or ``.git/info/exclude``;
* the security deny list ``DENY_PATTERNS`` (applied at any depth and in any case; no
  negation re-includes it), and hard links to a deny-listed file the walk listed first
  (limits in ``deny.py``);
* any ``.git`` entry and ``settings.index_dir`` when it lies inside the root.

Discovery opens nothing but regular files, and never blocks on one: the 8 KiB sniff, the
ignore files and a ``.git`` file all go through ``reading.open_regular``. An ignore file
or ``.git`` file that is a FIFO, device, socket or symlink, or is over its byte cap, is
skipped with a warning on the ``codeindex.discovery`` logger (details in ``ignore.py``).

Ignore precedence follows git (details in ``ignore.py``); symlink handling and the
deterministic order are described in ``walk.py``.

Modules, one job each: ``walk`` (the walker; single paths: ``check_path``,
``resolve_inside_root``), ``ignore`` (ignore files and their precedence:
``IgnoreMatcher``), ``deny`` (the deny list, ``.git`` and the index directory),
``classify`` (one file's stat -> SourceFile or Skipped: size cap, binary sniff, stat and
open errors), ``generated`` (the machine-written text rules), ``reading`` (the one way a
file is opened: never blocking, regular files only, a byte cap). Callers import from
``codeindex.discovery`` only.
"""

from codeindex.discovery.deny import DENY_PATTERNS
from codeindex.discovery.generated import GENERATED_NAMES, SNIFF_BYTES, generated_reason
from codeindex.discovery.ignore import IGNORE_FILENAMES, IgnoreMatcher
from codeindex.discovery.walk import check_path, resolve_inside_root, walk

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
