"""Tests of live adaptive routing: decisions, exactly-once learning across restarts, checkpoints."""
