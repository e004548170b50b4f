"""The watcher's change queue (coalescing, debounce, max-debounce, overflow) on a fake
clock. Times are integer milliseconds, so every deadline is exact; the queue only
compares the numbers it is given."""

from __future__ import annotations

from collections.abc import Iterable

from codeindex.watch.changes import Batch, ChangeQueue

DEBOUNCE, MAX_DELAY = 300, 1000


def queue(limit: int = 100) -> ChangeQueue:
    return ChangeQueue(limit, DEBOUNCE, MAX_DELAY)


def run(q: ChangeQueue, events: Iterable[tuple[int, str]], until: int) -> list[tuple[int, Batch]]:
    """Drive the queue as the worker does, one fake millisecond at a time: take a batch
    as soon as it is due, then record the events of that millisecond. Returns (time
    taken, batch) pairs."""
    by_time: dict[int, list[str]] = {}
    for at, path in events:
        by_time.setdefault(at, []).append(path)
    taken = []
    for now in range(until + 1):
        if q.has_work() and now >= q.due(now):
            taken.append((now, q.take()))
        for path in by_time.get(now, []):
            q.add(now, path=path)
    return taken


def test_create_modify_delete_of_one_path_coalesce_into_one_entry() -> None:
    q = queue()
    assert q.add(0, path="src/a.py")  # created: the idle queue wakes the worker
    assert not q.add(10, path="src/b.py")  # a worker with a deadline needs no wake-up
    assert not q.add(20, path="src/a.py")  # modified
    assert not q.add(30, path="src/a.py")  # deleted
    assert q.pending_count() == 2
    assert q.take() == Batch(paths=["src/a.py", "src/b.py"], first_at=0)
    assert not q.has_work() and q.pending_count() == 0 and q.first_at is None


def test_a_batch_is_due_once_the_tree_is_quiet_for_the_debounce() -> None:
    q = queue()
    q.add(0, path="a.py")
    assert q.due(0) == 300
    q.add(200, path="a.py")  # each change restarts the quiet window
    assert q.due(200) == 500 and q.due(499) == 500


def test_debounce_window_exact_batches() -> None:
    # Two bursts 400 ms apart (> debounce): two batches, each 300 ms after its last event.
    events = [(0, "a.py"), (100, "b.py"), (200, "a.py"), (600, "c.py"), (650, "c.py")]
    assert run(queue(), events, until=2000) == [
        (500, Batch(paths=["a.py", "b.py"], first_at=0)),
        (950, Batch(paths=["c.py"], first_at=600)),
    ]
    # Bursts closer than the debounce are one batch.
    events = [(0, "a.py"), (250, "b.py"), (500, "c.py")]
    assert run(queue(), events, until=2000) == [
        (800, Batch(paths=["a.py", "b.py", "c.py"], first_at=0)),
    ]


def test_max_debounce_caps_the_wait_under_a_continuous_storm() -> None:
    # A change every 100 ms for 2.5 s: the tree is never quiet for 300 ms, so only the
    # max-debounce cap (1000 ms after a batch's first change) lets batches through.
    events = [(t, f"f{t // 100}.py") for t in range(0, 2500, 100)]
    assert run(queue(), events, until=5000) == [
        (1000, Batch(paths=[f"f{i}.py" for i in range(0, 10)], first_at=0)),
        (2000, Batch(paths=[f"f{i}.py" for i in range(10, 20)], first_at=1000)),
        (2700, Batch(paths=[f"f{i}.py" for i in range(20, 25)], first_at=2000)),  # quiet
    ]


def test_overflow_becomes_a_single_reconcile_request() -> None:
    q = queue(limit=3)
    wakes = [q.add(t, path=f"f{t}.py") for t in range(10)]
    q.add(10, gone_dir="old")
    assert wakes == [True] + [False] * 9
    assert q.overflows == 1  # the fourth change overflowed; the rest joined the reconcile
    assert q.pending_count() == 0  # the paths it covers are dropped, memory stays bounded
    assert q.take() == Batch(reconcile="event queue overflow (more than 3 changes)", first_at=0)
    # Once taken, the queue records paths again.
    q.add(20, path="after.py")
    assert q.take() == Batch(paths=["after.py"], first_at=20)
    assert q.overflows == 1


def test_a_pending_reconcile_covers_later_paths_and_keeps_its_reason() -> None:
    q = queue()
    q.add(0, path="a.py")
    q.add(5, rescope=True)  # an ignore file changed
    q.add(10, path="b.py", reconcile="a later reason")
    assert q.take() == Batch(reconcile="ignore rules changed", rescope=True, first_at=0)


def test_a_requested_reconcile_is_due_at_once_without_a_change_time() -> None:
    q = queue()
    q.request("startup")
    assert q.has_work() and q.due(7) == 7
    assert q.take() == Batch(reconcile="startup")  # first_at None: no lag to report
    q.add(100, path="a.py")
    assert q.due(100) == 400  # no longer urgent


def test_retry_after_an_error_waits_for_the_backoff() -> None:
    q = queue()
    q.retry(1000, not_before=3000, reason="retry after an error")
    q.add(1500, path="a.py")
    assert q.due(1500) == 3000  # not 1800: the backoff holds the batch
    assert q.take() == Batch(reconcile="retry after an error", first_at=1000)
    q.add(3500, path="b.py")
    assert q.due(3500) == 3800  # the backoff is over


def test_watch_changes_are_coalesced_and_bounded() -> None:
    q = queue(limit=2)
    q.add(0, unit=("src", False), gone_dir=None)
    q.add(1, unit=("src", True))  # a forced re-watch wins
    assert q.take() == Batch(units={"src": True}, first_at=0)
    for i, name in enumerate(("a", "b", "c")):  # more top-level changes than the limit
        q.add(i, unit=(name, False))
    assert q.take() == Batch(all_units=True, first_at=0)


def test_a_native_watch_failure_is_urgent_until_its_watch_is_replaced() -> None:
    q = queue()
    assert not q.take_fallback("vendor")
    assert q.add(0, path="a.py")
    assert q.add(10, fallback_unit="vendor")  # urgent: wakes the worker at once
    assert q.due(10) == 10
    assert q.take_fallback("vendor") and not q.take_fallback("vendor")
    assert q.take() == Batch(paths=["a.py"], first_at=0)
