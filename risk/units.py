"""Calendar and unit facts the risk core converts with: the only numeric constants allowed in ``risk/``.

These are definitions, not tunables: every limit lives in ``config/``. The audit test scans ``risk/`` and
refuses any other module-level number.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
S_PER_HOUR = 3_600
S_PER_DAY = 86_400
S_PER_WEEK = 604_800

EPOCH_2000_NS = 946_684_800 * NS_PER_S
EPOCH_2100_NS = 4_102_444_800 * NS_PER_S
"""An intent's ``ts_ns`` must lie in [2000-01-01, 2100-01-01) UTC: outside it, it is not nanoseconds since the
epoch (a count of seconds or milliseconds, a sign error, garbage), whatever clock the strategy runs on."""
