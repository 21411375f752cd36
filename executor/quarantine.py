"""Malformed intent lines in ``--follow`` mode: a dead letter in the journal, an alert and a counter.

Why: a tailed intents file is written by another system while the executor trades; one bad line must
neither stop trading on the lines after it nor vanish. Without ``--follow`` the run stops at the line
instead (the operator fixes the file and reruns, ``cli.live``). Either way a line already quarantined
is handled: a restart re-reads the file from the top and skips it, without a second dead letter or alert
(the journal keys dead letters by file, line number and content).

The alert is stored before the dead letter is journaled, so a crash between the two repeats the alert on
restart rather than losing it.
"""

from __future__ import annotations

import logging

from router_tuner.executor.intents import MalformedLine
from router_tuner.executor.journal import Journal
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.records import Alert
from router_tuner.executor.store import ExecutorStore

logger = logging.getLogger(__name__)

ALERT_CODE = "intent_quarantined"
COUNTER_RESULT = "quarantined"
"""The ``executor_intents`` counter's result label for a quarantined line (beside routed, vetoed, duplicate)."""


def quarantine_line(line: MalformedLine, *, journal: Journal, store: ExecutorStore, metrics: ExecutorMetrics,
                    ts_ns: int) -> bool:
    """Dead-letter ``line`` with an alert and a count; ``False`` when it was quarantined before (nothing done)."""
    if journal.is_quarantined(line):
        logger.info("intent line %s:%d was quarantined before: skipped", line.file, line.line_no)
        return False
    store.append_alert(Alert(code=ALERT_CODE, threshold=0.0, observed=float(line.line_no),
                             detail=(f"{line.file}:{line.line_no}: malformed intent quarantined ({line.reason}); "
                                     "fix the producer and resend the intent on a new line"), ts_ns=ts_ns))
    journal.quarantine(line, ts_ns=ts_ns)
    metrics.intents.labels(COUNTER_RESULT).inc()
    metrics.alerts_raised.labels(ALERT_CODE).inc()
    logger.warning("malformed intent quarantined: %s:%d: %s", line.file, line.line_no, line.reason)
    return True
