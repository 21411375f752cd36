"""The executor's route engine: route machines as asyncio tasks on one event loop, beside the executor's thread,
and what start-up built kept out of the garbage collector's full passes while they run."""
