"""The value types' contracts that hold without any index."""

from __future__ import annotations

import datetime as dt

from codeindex.types import utc_iso
from tests.conftest import UTC_ISO


def test_utc_iso_is_the_one_timestamp_format() -> None:
    noon = dt.datetime(2024, 5, 1, 12, 0, 0, 750_000, tzinfo=dt.UTC).timestamp()
    assert utc_iso(noon) == "2024-05-01T12:00:00+00:00"  # to the second, offset spelled out
    assert UTC_ISO.fullmatch(utc_iso(noon))
    # None and 0 mean "never": no timestamp, not 1970.
    assert utc_iso(None) is None and utc_iso(0) is None
