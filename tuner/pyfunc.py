"""A published policy version as an MLflow pyfunc model: its signature and its saved directory.

The model (:mod:`tuner.policy_model`, models-from-code) takes decision contexts (the fields of
:class:`features.context.Context`) and returns the version's knobs and propensity (the fields of
:class:`router.policy.RouterPolicy`), so a registered version loads with ``mlflow.pyfunc.load_model`` like any
MLflow model. Requirements are pinned to the running MLflow and pandas: inferring them would import and
probe the whole environment at every publish. Imported by :mod:`tuner.registry` only (it imports MLflow).
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from router_tuner.features.context import Context
from router_tuner.router.policy import RouterPolicy

MODEL_CODE = Path(__file__).with_name("policy_model.py")
_COLUMN_TYPES: dict[object, str] = {bool: "boolean", int: "long", float: "double", str: "string"}


def _column_type(annotation: object) -> str:
    """MLflow column type of a dataclass field (a ``Literal`` of strings is a string)."""
    if typing.get_origin(annotation) is typing.Literal:
        return "string"
    return _COLUMN_TYPES[annotation]


def policy_signature() -> ModelSignature:
    """Decision context in, every RouterPolicy field out (``version`` is the policy version)."""
    context_hints = typing.get_type_hints(Context)
    policy_hints = typing.get_type_hints(RouterPolicy)
    inputs = Schema([ColSpec(_column_type(context_hints[f.name]), f.name) for f in dataclasses.fields(Context)])
    outputs = Schema([ColSpec(_column_type(policy_hints[f.name]), f.name) for f in dataclasses.fields(RouterPolicy)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_policy_model(policy: RouterPolicy, directory: Path) -> Path:
    """Write the pyfunc model of ``policy`` to ``directory`` (which must not exist yet); returns it.

    No input example: the signature is explicit, and MLflow validates an example with an INFO line on
    stderr at every publish; its warning that an example helps infer the signature does not apply here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*An input example was not provided")  # colour codes first
        mlflow.pyfunc.save_model(
            str(directory), python_model=str(MODEL_CODE), model_config=policy.as_params(),
            signature=policy_signature(),
            pip_requirements=[f"mlflow=={mlflow.__version__}", f"pandas=={pd.__version__}"])
    return directory
