"""Which Prometheus series exist: open-ended labels bounded, labelled gauges replaced without a gap.

Why bounded: a series lives per label combination for the life of the process, and some label values come
from outside the code (an arm or policy id from the registry, a veto reason code, a rejection reason). Past
``max_values`` distinct values a label exports :data:`OVERFLOW`, so the series count stays bounded whatever a
policy source sends. Symbols, sides and outcomes are closed sets and need no budget.

Why replaced as a whole: health rows (per symbol, per hour, per quality band) change between publishes;
clearing a gauge and setting it again leaves a moment where a concurrent scrape sees no series, and a
dashboard shows a hole. :class:`GaugeSeries` sets the new values first, then removes the label sets that went.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import Gauge

OVERFLOW = "other"
LabelValues = tuple[str, ...]


class LabelBudget:
    """The values seen per label name, first come first kept, up to ``max_values`` each.

    Examples
    --------
    >>> budget = LabelBudget(max_values=2)
    >>> [budget.value("arm", a) for a in ("o0.5_b0", "o1_b0", "o2_b0", "o0.5_b0")]
    ['o0.5_b0', 'o1_b0', 'other', 'o0.5_b0']
    """

    def __init__(self, max_values: int) -> None:
        if max_values < 1:
            raise ValueError(f"max_values must be at least 1, got {max_values}")
        self.max_values = max_values
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def value(self, label: str, value: str) -> str:
        """``value`` when it is known or there is room for it, else :data:`OVERFLOW`."""
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) < self.max_values:
                seen.add(value)
                return value
            return OVERFLOW


class GaugeSeries:
    """A labelled gauge whose series are replaced as a whole by :meth:`publish`."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._current: set[LabelValues] = set()
        self._lock = threading.Lock()

    def publish(self, values: Mapping[LabelValues, float]) -> None:
        """Exactly the series of ``values`` afterwards (NaN where a value is undefined)."""
        with self._lock:
            for labels, value in values.items():
                self.gauge.labels(*labels).set(value)
            for labels in self._current - values.keys():
                self.gauge.remove(*labels)
            self._current = set(values)
