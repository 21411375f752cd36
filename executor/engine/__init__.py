"""The executor's route engine: route machines as asyncio tasks on one event loop, beside the executor's thread,
and the garbage collector run between orders rather than inside a decision."""
