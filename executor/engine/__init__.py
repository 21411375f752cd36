"""The executor's route engine: route machines as asyncio tasks on one event loop, beside the executor's thread."""
