"""The MLflow pyfunc of one published RouterPolicy version; MLflow runs this file to load it (models-from-code).

``mlflow.pyfunc.load_model("models:/<prefix>-<SYMBOL>@champion").predict(contexts)`` answers, for each row of
decision contexts (``spread_bps``, ``volatility_bps``, ``book_imbalance``, ``hour``, ``size_vs_touch``, as the
router logs them), the knobs the router routes that order with and the propensity of the version's arm. A
published version is one arm, so every row gets the same knobs: the context is the input because that is
what the router decides on, and the signature states it for whoever calls the model. The policy document is
the model's ``model_config`` (readable in the MLmodel file). This file imports MLflow and pandas only, so
loading the model needs no router-tuner installation; :mod:`tuner.pyfunc` builds the signature and saves it.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class PolicyVersionModel(mlflow.pyfunc.PythonModel):
    """The knobs and propensity of one published policy version, for any decision context."""

    def load_context(self, context: Any) -> None:
        self._policy = dict(context.model_config)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows = len(model_input)
        return pd.DataFrame({knob: [value] * rows for knob, value in self._policy.items()})


mlflow.models.set_model(PolicyVersionModel())
