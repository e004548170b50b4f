"""Watch mode: keep one index following its root's working tree.

``Watcher`` (``watcher.py``) is the public face; callers import from
``codeindex.watch`` only.
"""

from codeindex.watch.watcher import Watcher

__all__ = ["Watcher"]
