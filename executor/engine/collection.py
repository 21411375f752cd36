"""The cyclic garbage collector run between orders, where the executor chooses, not inside a decision.

CPython collects when tracked allocations outnumber frees by generation 0's threshold (700), that is in
whatever code happens to allocate next: with the tuner deciding, about one decision in fifty paid a young
collection and one in five hundred an older one, which is most of the intent -> first order p99
(``experiments.bench.route`` shows both ways in one run). Two habits of latency-sensitive Python services
move that work off the clock:

* :func:`freeze_startup`: what start-up built (modules, configs, learners, the paper market) goes to the
  permanent generation, so no later collection scans it again;
* :func:`collect_if_due` after a route has landed and been learned (``Executor._land``): the generation
  CPython would collect next is collected as soon as generation 0 is half way to its threshold, so the next
  decision rarely crosses it.

The automatic collector stays on, so a stretch that allocates more than an order's worth between two landings
is still collected as before; collections only come earlier, never later. Freezing is a process-wide choice
made by the command that owns the process (``router-tuner live``, thawed when its run ends), not by the
executor.
"""

from __future__ import annotations

import gc

HEADROOM = 0.5
"""Share of generation 0's threshold at which :func:`collect_if_due` collects: a decision may then allocate
the other half before the automatic collector would run inside it."""


def freeze_startup() -> None:
    """Collect everything once, then exclude what survives from later collections (``gc.freeze``) until
    :func:`thaw`."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """End :func:`freeze_startup`: the frozen objects are collectable again (a cycle among them that became
    garbage during the run is collected by the next full collection)."""
    gc.unfreeze()


def collect_if_due() -> int | None:
    """Collect the oldest generation whose count is past its threshold, generation 0's at :data:`HEADROOM`.

    Returns the generation collected, ``None`` when nothing was due or the collector is off (``gc.disable``
    or a zero threshold: a caller that switched it off keeps it off).
    """
    if not gc.isenabled():
        return None
    young, middle, old = gc.get_count()
    young_limit, middle_limit, old_limit = gc.get_threshold()
    if young_limit <= 0 or young < young_limit * HEADROOM:
        return None
    # CPython's own order: the oldest generation past its threshold (each collection of generation n counts
    # one more for generation n + 1); it defers full collections further while few objects are new, which
    # cannot be read from Python, so a full one here may come earlier than it would have: never later.
    generation = 2 if old > old_limit else 1 if middle > middle_limit else 0
    gc.collect(generation)
    return generation
