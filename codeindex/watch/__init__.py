"""Watch mode: keep one index following its root's working tree.

``Watcher`` (``watcher.py``) is the public face; callers import from
``codeindex.watch`` only.
"""

from codeindex.watch.watcher import Watcher, run_watch_cli

__all__ = ["Watcher", "run_watch_cli"]
