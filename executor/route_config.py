"""The router's settings as the executor runs it (``executor.json`` ``route``): one definition shared by the
live loop and the simulation, so the simulation routes exactly as production does."""

from __future__ import annotations

from router_tuner.config.models import ConfigBundle
from router_tuner.router.routing.order import RouteSettings


def route_settings(config: ConfigBundle) -> RouteSettings:
    """``router.json`` under the executor's poll interval, venue retries and rate-limit backoff."""
    loop = config.executor.route
    return RouteSettings.from_config(config.router, poll_interval_ms=loop.poll_interval_ms,
                                     max_venue_retries=loop.max_venue_retries,
                                     rate_limit_backoff_ms=loop.rate_limit_backoff_ms,
                                     max_retry_after_ms=loop.max_retry_after_ms)
