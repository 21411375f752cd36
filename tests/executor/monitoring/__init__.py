"""Tests of what the executor shows operators: health, alerts, metric names, telemetry."""
