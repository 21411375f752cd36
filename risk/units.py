"""Calendar and unit facts the risk core converts with: the only numeric constants allowed in ``risk/``.

These are definitions, not tunables: every limit lives in ``config/``. The audit test scans ``risk/`` and
refuses any other module-level number.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
S_PER_HOUR = 3_600
S_PER_DAY = 86_400
S_PER_WEEK = 604_800
