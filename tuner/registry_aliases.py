"""The registry's alias names, in a module free of MLflow so the router's policy source can name them cheaply.

``champion`` is the version that acts; ``challenger`` the newest proposed one (see :mod:`tuner.registry`).
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
