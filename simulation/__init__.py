"""The main job (`router-tuner simulate`): replayed markets, seeded intents, every policy routed on the same
intents through the simulated venue, the shadow scenario, journal/MLflow recording and the report.

Sits above `executor`, `router`, `risk`, `tuner` and `features` and imports from them; none of them imports it.
"""
