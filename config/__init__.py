"""Configuration: default files and the strict loader. Holds no trading code."""

from router_tuner.config.loader import ConfigError, ConfigIssue, load_config, snapshot
from router_tuner.config.models import ConfigBundle

__all__ = ["ConfigBundle", "ConfigError", "ConfigIssue", "load_config", "snapshot"]
