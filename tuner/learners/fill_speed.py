"""How much faster posts fill lately than the learner's memory says: the market's activity, seen in fill times.

Why: a market turning busy shows first in how fast a post fills, not in whether it fills. On the synthetic regime
market (README, "The tuner") a post 0.5 bps behind the touch filled 92% of the time in the quiet stretches and
100% in the busy one, but its median time to fill fell from ~1,650 ms to 93 ms; the fill model, which sees
fills only, kept the quiet market's curve, put a post 4 bps behind at a 3% fill (it filled ~73%), and the
learner stayed near the touch through the busy stretch in most runs.

Model: posts at offset d fill at the hazard ``level(t) * h(d)`` (proportional hazards: activity multiplies the
fill rate at every distance while the shape across distances changes slowly). Per offset two discounted tallies
are kept of first-post fills and exposure (the share of the TTL each post waited: its fill time over the TTL, 1
when the first post did not fill), one with the learner's memory (``slow_window``), one short (``fast_window``),
both aged by every outcome, taker legs included. The level is the ratio of the recent fills to those the
long-memory hazards expect over the recent exposure,
``(observed + 1) / (expected + 1)`` (one pseudo-fill each way, so a few outcomes cannot swing it), kept within
``exp(±MAX_LOG_LEVEL)``. A fill probability p of the fitted curve then becomes ``1 - (1 - p) ** level``: the
probability under a hazard ``level`` times as high. Offsets routed lately carry their own fresh evidence;
the level moves what the curve says of the others.

Where it lives: the tallies are an array of the structured learner's workspace (``structured_layout``) and an
outcome ages them and sets the level inside the learner's one compiled update (``structured_kernel.learn``): as a
call of its own per outcome it cost ~0.6 us of a ~9 us update. This module holds the model's constants.
"""

from __future__ import annotations

MAX_LOG_LEVEL = 3.0
"""The level stays within e^-3 .. e^3 (a twentyfold change of the fill rate either way)."""
PSEUDO_FILLS = 1.0
PRIOR_EXPOSURE = 0.5
"""An offset without long-memory evidence is expected to fill at one per TTL (half a fill over half a TTL). Tried and
not kept (tune split): shrinking each offset's rate towards all offsets' pooled rate instead (+0.043/+0.054 bps behind
the best fixed arm on seeds 3-5/6-8 against +0.032/+0.047, the synthetic regime market no longer followed on 6-8)."""
