"""The scoring script of a no-code deployment of an MLflow model (an ``mlflow_model`` with no
``code_configuration``): ``init()`` loads the model with ``mlflow.pyfunc.load_model`` and
``run()`` calls its ``predict``.

It is copied into the deployment's code folder and served by the replica like any scoring
script, so it runs in the deployment's environment (which must have ``mlflow``). Request shapes:

- Azure's ``{"input_data": {"columns": [...], "index": [...], "data": [...]}}`` (a data frame,
  split orient) or ``{"input_data": [[...], ...]}`` / ``{"input_data": {"name": [...]}}``
  (tensors), answered with the predictions as a JSON list, as Azure answers;
- MLflow's ``dataframe_split``, ``dataframe_records``, ``inputs`` and ``instances`` (with
  optional ``params``), answered with ``{"predictions": ...}``, as ``mlflow models serve`` does.

The parsing of MLflow's shapes is MLflow's own (``mlflow.pyfunc.scoring_server``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The model folder below AZUREML_MODEL_DIR (set by the workspace; else searched for MLmodel).
SUBPATH_VAR = "MLWS_MLFLOW_MODEL_SUBPATH"

model: Any = None


class BadRequest(ValueError):
    """A body this model cannot read: the replica answers 400."""

    http_status = 400


def _model_path() -> Path:
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    sub = os.environ.get(SUBPATH_VAR)
    if sub:
        return root / sub
    for found in sorted(root.rglob("MLmodel")):
        return found.parent
    raise FileNotFoundError(f"no MLmodel file under {root}: this is not an MLflow model")


def init() -> None:
    global model
    try:
        import mlflow.pyfunc
    except ImportError:
        raise ImportError("a no-code deployment of an MLflow model needs mlflow in its "
                          "environment: add mlflow to the environment's pip requirements, "
                          "or give a scoring script") from None
    model = mlflow.pyfunc.load_model(str(_model_path()))


def _azure_input(value: Any) -> dict[str, Any]:
    """Azure's ``input_data`` as the MLflow request it means."""
    if isinstance(value, dict) and "data" in value and set(value) <= {"columns", "index",
                                                                       "data"}:
        return {"dataframe_split": value}
    return {"inputs": value}


def _jsonable(predictions: Any) -> Any:
    from mlflow.pyfunc.scoring_server import NumpyEncoder, _get_jsonable_obj

    return json.loads(json.dumps(_get_jsonable_obj(predictions, pandas_orient="records"),
                                 cls=NumpyEncoder))


def run(raw_data: str) -> Any:
    from mlflow.pyfunc.scoring_server import SUPPORTED_FORMATS, infer_and_parse_data

    try:
        body = json.loads(raw_data)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object: {\"input_data\": ...} or one of "
                         f"{', '.join(SUPPORTED_FORMATS)}")
    azure = "input_data" in body
    request = _azure_input(body["input_data"]) if azure else body
    params = request.pop("params", None) if not azure else body.get("params")
    try:
        data = infer_and_parse_data(request, model.metadata.get_input_schema())
    except Exception as exc:
        raise BadRequest(f"the body cannot be read as model input: {exc}") from None
    predictions = model.predict(data, params=params) if params else model.predict(data)
    out = _jsonable(predictions)
    return out if azure else {"predictions": out}
