"""What the executor shows operators: health computed from events, alerts, Prometheus metrics and their
bounded series, and the telemetry that publishes them on a timer."""
