"""The hostile-input corpus: every case of every module registered once, and what cases share.

A case is one hostile or malformed input through one entry point. Modules register their
cases here (``register``) so that the closing summary can print the corpus size
(``tests/conftest.py``). This module also holds what the differential cases are written
with: ``outcome`` (a call's result, or its error class and code, and for a raw Python
exception whether it came out of ``mlflow_plugin``), the ``World`` a case acts on, and the
sentinel run that must read back identically after every case.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList

from tests.differential.book import plain_json
from tests.differential.normalise import Normaliser
from tests.registry.harness import to_json as registry_to_json
from tests.tracking.harness import normalise as tracking_normalise
from tests.tracking.harness import to_json as tracking_to_json

#: Corpus case name -> input class, for every module of tests/hostile.
CORPUS: dict[str, str] = {}

T0 = 1_000_000  # explicit timestamps below the wall-clock floor stay in compared results
MODEL_SOURCE = "s3://models-bucket/hostile/model"


def register(name: str, input_class: str) -> None:
    if name in CORPUS:
        raise ValueError(f"duplicate hostile case {name}")
    CORPUS[name] = input_class


def summary() -> str:
    classes = len(set(CORPUS.values()))
    return f"hostile-input corpus: {len(CORPUS)} cases in {classes} input classes"


def to_json(value: object) -> object:
    """Tracking and registry entities, and containers of them, as plain JSON."""
    if isinstance(value, PagedList):
        return {"items": [to_json(item) for item in value], "has_next_page": bool(value.token)}
    if isinstance(value, RegisteredModel | ModelVersion):
        return registry_to_json(value)
    if isinstance(value, dict | list | tuple) or value is None:
        return plain_json(value, to_json)
    if isinstance(value, str | int | float | bool):
        return value
    return tracking_to_json(value)


normalise = Normaliser(
    timestamp_keys=tracking_normalise.timestamp_keys,
    id_keys={**tracking_normalise.id_keys, "logged_model_id": "model"},
    dropped_keys=tracking_normalise.dropped_keys,
    shared_ids=tracking_normalise.shared_ids,
)


def raised_in_plugin(exc: BaseException) -> bool:
    """Whether the exception passed through this package's code (not only MLflow's client)."""
    return any(
        "mlflow_plugin" in frame.filename for frame in traceback.extract_tb(exc.__traceback__)
    )


def outcome(fn: Callable[..., object], *args: Any, **kwargs: Any) -> list[object]:
    """``["ok", result]`` or ``["error", class, code]``; a raw exception says where it came from.

    A raw Python exception that MLflow's client raises before any store is reached is the
    same on every store; one that passed through ``mlflow_plugin`` is a defect.
    """
    try:
        return ["ok", to_json(fn(*args, **kwargs))]
    except MlflowException as exc:
        return ["error", type(exc).__name__, exc.error_code]
    except Exception as exc:
        origin = "raw, through mlflow_plugin" if raised_in_plugin(exc) else "raw, from MLflow"
        return ["error", type(exc).__name__, origin]


def head(result: list[object]) -> tuple[object, ...]:
    """What a divergence pins: ``("ok",)`` or ``("error", class, code)``."""
    return ("ok",) if result[0] == "ok" else tuple(result[:3])


OK: tuple[object, ...] = ("ok",)


def error(code: str, cls: str = "MlflowException") -> tuple[object, ...]:
    return ("error", cls, code)


@dataclass
class World:
    """What a case acts on: an experiment, a target run, a sentinel run; models on demand.

    The sentinel run (params, tags, a three-step metric) is never named by a case; it must
    read back identically after the case, whatever the case did to the store.
    """

    client: MlflowClient
    experiment_id: str
    run_id: str
    sentinel_run_id: str
    _model_name: str | None = field(default=None, repr=False)
    _logged_model_id: str | None = field(default=None, repr=False)

    @classmethod
    def build(cls, client: MlflowClient) -> World:
        experiment_id = client.create_experiment("hostile")
        run_id = client.create_run(experiment_id, start_time=T0, run_name="target").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("m", 1.0, T0, 0)],
            params=[Param("p", "1")],
            tags=[RunTag("t", "v")],
        )
        # Started later than the target run: searches list the two in one order everywhere.
        sentinel = client.create_run(experiment_id, start_time=T0 + 1, run_name="sentinel")
        client.log_batch(
            sentinel.info.run_id,
            metrics=[Metric("loss", 0.5 / 2**i, T0 + i, i) for i in range(3)],
            params=[Param("lr", "0.01")],
            tags=[RunTag("team", "vision")],
        )
        return cls(client, experiment_id, run_id, sentinel.info.run_id)

    @property
    def model_name(self) -> str:
        """A registered model with one version, created the first time a case asks."""
        if self._model_name is None:
            self._model_name = "hostile-model"
            self.client.create_registered_model(self._model_name)
            self.client.create_model_version(self._model_name, MODEL_SOURCE, run_id=self.run_id)
        return self._model_name

    @property
    def logged_model_id(self) -> str:
        if self._logged_model_id is None:
            model = self.client.create_logged_model(self.experiment_id, name="hostile-logged")
            self._logged_model_id = model.model_id
        return self._logged_model_id

    def sentinel(self) -> object:
        """The sentinel run as a reader sees it, un-normalised (compared on one store)."""
        return {
            "run": to_json(self.client.get_run(self.sentinel_run_id)),
            "history": to_json(self.client.get_metric_history(self.sentinel_run_id, "loss")),
        }
