"""What start-up built kept out of the garbage collector's full passes while ``live`` runs.

A ``live`` process holds a quarter to half a million container objects before its first intent, nearly all from
the modules it imports (ccxt's exchange classes, MLflow, numpy, pandas) and none of them ever garbage. CPython scans
every one of them in each full collection, which it starts by itself, inside whatever code allocates at that moment
(a decision, a route's poll), whenever the objects that outlived younger collections have grown by a quarter since
the last one. Measured: one full collection with ``live``'s modules loaded takes 105-111 ms
(``experiments.bench.route``, ~230k objects; 162 ms with ccxt.pro and MLflow imported as well, ~410k), and
0.001 ms once they are frozen. :func:`freeze_startup` moves them to the permanent
generation (``gc.freeze``); young collections are untouched (they cost microseconds: the route bench shows the
same decision latency with the collector on or off).

Freezing is a process-wide choice made by the command that owns the process (``router-tuner live``, which calls
:func:`thaw` when its run ends), not by the executor, which tests build by the hundred in one process.
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Collect once, then keep every object alive now out of later collections until :func:`thaw`."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """End :func:`freeze_startup`: the frozen objects are collectable again (a cycle among them that became
    garbage during the run is freed by the next full collection)."""
    gc.unfreeze()
