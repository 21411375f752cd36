"""Adaptive routing in the executor (`--policy-source tuner`): per-intent decisions from the tuner service,
exactly-once learning across restarts (`routing`), atomic checkpoints (`checkpoint`), the records kept before
an order leaves (`records`) and the tuner block of health (`health`)."""
