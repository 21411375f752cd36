"""Venues behind the ``router.venue.Venue`` protocol: the simulated replay venue (``sim/``) and the live
venue on ccxt (``ccxt/``). The router speaks only the protocol; exchange quirks stay in these adapters."""
