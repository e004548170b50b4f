"""The pending changes of a watcher: coalescing, debounce, overflow. Pure.

No threads, no I/O, no clock of its own: every method that depends on time takes
``now`` (monotonic seconds) from the caller, so the rules below are tested with a fake
clock. Not thread-safe: the watcher calls it with its condition's lock held.

* **Coalescing.** Changes are kept per path in an insertion-ordered set, so a file
  created, modified and deleted before the batch is taken is one entry; what happened
  to it is decided when the batch is applied (it exists or it does not). Directories
  that vanished, top-level directories whose watch must follow them, and native-watch
  failures are coalesced the same way.
* **Debounce.** A batch is due ``debounce`` seconds after the last change or, for a
  tree that never goes quiet, at the latest ``max_delay`` seconds after the first one.
  An urgent request (startup, a native-watch failure) is due at once; an error backoff
  (``retry``) delays everything else until ``not_before``.
* **Bounded.** At most ``limit`` paths and directories are pending; one more turns the
  batch into ONE reconcile request (a full walk, which streams) and drops the paths it
  covers. While a reconcile is pending no path is recorded, so a storm of any size
  costs O(limit) memory and counts as one overflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Batch:
    """Everything the worker takes in one go (the queue is cleared)."""

    paths: list[str] = field(default_factory=list)
    gone_dirs: list[str] = field(default_factory=list)  # indexed files under them re-checked
    reconcile: str | None = None  # reason for a full index() pass
    rescope: bool = False  # ignore rules changed: invalidate the matcher first
    units: dict[str, bool] = field(default_factory=dict)  # top-level name -> force re-watch
    all_units: bool = False
    fallback_units: set[str] = field(default_factory=set)  # native watch limit hit
    first_at: float | None = None  # monotonic time of the oldest change in the batch


class ChangeQueue:
    """Pending changes until the worker takes them as one ``Batch`` (module docstring).

    ``limit`` bounds the pending paths + directories (and, separately, the top-level
    directories whose watch changes); ``debounce`` and ``max_delay`` are in seconds.
    """

    def __init__(self, limit: int, debounce: float, max_delay: float) -> None:
        self.limit = limit
        self.debounce = debounce
        self.max_delay = max(debounce, max_delay)
        self._paths: dict[str, None] = {}  # insertion-ordered set of relative paths
        self._gone_dirs: dict[str, None] = {}
        self.reconcile: str | None = None  # reason of the reconcile requested, if any
        self._rescope = False
        self._units: dict[str, bool] = {}
        self._all_units = False
        self._fallback_units: set[str] = set()
        self.first_at: float | None = None  # when the oldest pending change arrived
        self._last_at: float | None = None
        self._urgent = False
        self._not_before = 0.0  # error backoff
        self.overflows = 0  # times more than ``limit`` changes turned into a reconcile

    # ---------------------------------------------------------------- adding
    def add(
        self,
        now: float,
        *,
        path: str | None = None,
        gone_dir: str | None = None,
        unit: tuple[str, bool] | None = None,
        rescope: bool = False,
        reconcile: str | None = None,
        fallback_unit: str | None = None,
    ) -> bool:
        """Record one change seen at ``now``: a file ``path`` (created, modified, deleted
        or moved: all the same here), a directory that is gone (``gone_dir``), a
        top-level directory whose watch must follow it (``unit``: name, force re-watch),
        changed ignore rules (``rescope``, which implies a reconcile), a reconcile with
        its reason, or a top-level directory that ran out of native watches
        (``fallback_unit``, urgent).

        Returns True when a waiting worker must be woken: the queue was empty before
        (its wait has no deadline) or the batch is now urgent."""
        was_idle = not self.has_work()
        if unit is not None:
            name, force = unit
            self._units[name] = self._units.get(name, False) or force
            if len(self._units) > self.limit:
                self._units.clear()
                self._all_units = True
        if fallback_unit is not None:
            self._fallback_units.add(fallback_unit)
            self._urgent = True
        if rescope:
            self._rescope = True
            reconcile = reconcile or "ignore rules changed"
        if reconcile is not None and self.reconcile is None:
            self.reconcile = reconcile
        if self.reconcile is None:
            if path is not None:
                self._paths[path] = None
            if gone_dir is not None:
                self._gone_dirs[gone_dir] = None
            if self.pending_count() > self.limit:
                self.overflows += 1
                self.reconcile = f"event queue overflow (more than {self.limit} changes)"
                self._paths.clear()
                self._gone_dirs.clear()
        else:
            # A reconcile queued (not yet started) covers every path.
            self._paths.clear()
            self._gone_dirs.clear()
        if self.first_at is None:
            self.first_at = now
        self._last_at = now
        return was_idle or self._urgent

    def request(self, reason: str) -> None:
        """An urgent reconcile, due at once. It carries no change time: the batch it
        makes reports no lag (used for the startup pass)."""
        self.reconcile = reason
        self._urgent = True

    def retry(self, now: float, not_before: float, reason: str) -> None:
        """After a failed batch: redo it as a reconcile (unless one is already pending),
        not before ``not_before``."""
        self._not_before = not_before
        if self.reconcile is None:
            self.reconcile = reason
        if self.first_at is None:
            self.first_at = self._last_at = now

    def take_fallback(self, name: str) -> bool:
        """Forget a pending native-watch failure of top-level directory ``name`` (its
        watch is being replaced); True if there was one."""
        hit = name in self._fallback_units
        self._fallback_units.discard(name)
        return hit

    # ---------------------------------------------------------------- reading
    def has_work(self) -> bool:
        """True while anything at all is pending."""
        return bool(
            self._paths
            or self._gone_dirs
            or self.reconcile
            or self._rescope
            or self._units
            or self._all_units
            or self._fallback_units
        )

    def pending_count(self) -> int:
        """Paths and directories pending (what ``limit`` bounds)."""
        return len(self._paths) + len(self._gone_dirs)

    def due(self, now: float) -> float:
        """When the pending batch should be taken (monotonic seconds; ``now`` or earlier
        means now). Meaningful only while ``has_work()``."""
        if self._urgent:
            return now
        last = self._last_at if self._last_at is not None else now
        first = self.first_at if self.first_at is not None else now
        return max(min(last + self.debounce, first + self.max_delay), self._not_before)

    # ---------------------------------------------------------------- taking
    def take(self) -> Batch:
        """Everything pending as one Batch; the queue is empty afterwards (the error
        backoff of ``retry`` stays in force)."""
        batch = Batch(
            paths=list(self._paths),
            gone_dirs=list(self._gone_dirs),
            reconcile=self.reconcile,
            rescope=self._rescope,
            units=dict(self._units),
            all_units=self._all_units,
            fallback_units=set(self._fallback_units),
            first_at=self.first_at,
        )
        self._paths.clear()
        self._gone_dirs.clear()
        self.reconcile = None
        self._rescope = False
        self._units.clear()
        self._all_units = False
        self._fallback_units.clear()
        self.first_at = self._last_at = None
        self._urgent = False
        return batch
