"""Where each document lives under the root. The only place that spells a key.

Ids that reach a key are checked first (``check_id``), so a hostile id can
never name an object outside its folder.
"""

from __future__ import annotations

import hashlib
import re

from mlflow_plugin.objectstore.errors import InvalidKey

__all__ = [
    "FORMAT_KEY",
    "InvalidId",
    "check_id",
    "is_valid_id",
    "document_of_key",
    "experiment_key",
    "experiment_name_key",
    "experiment_runs_prefix",
    "experiments_prefix",
    "logged_model_key",
    "logged_models_prefix",
    "metric_segment_key",
    "run_key",
    "run_location_key",
]

FORMAT_KEY = "_format.json"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class InvalidId(InvalidKey):
    """An id that is not a plain token (letters, digits, ``-``, ``_``): it would make a bad key."""


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidId(f"invalid {what} {value!r}")
    return value


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def experiment_name_key(name: str) -> str:
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return f"experiment-names/{digest}.json"


def experiments_prefix() -> str:
    return "experiments/"


def experiment_key(experiment_id: str) -> str:
    return f"experiments/{check_id(experiment_id, 'experiment id')}/experiment.json"


def experiment_runs_prefix(experiment_id: str) -> str:
    return f"experiments/{check_id(experiment_id, 'experiment id')}/runs/"


def run_key(experiment_id: str, run_id: str) -> str:
    return f"{experiment_runs_prefix(experiment_id)}{check_id(run_id, 'run id')}.json"


def run_location_key(run_id: str) -> str:
    return f"run-locations/{check_id(run_id, 'run id')}.json"


def metric_segment_key(experiment_id: str, run_id: str, segment: str) -> str:
    experiment = check_id(experiment_id, "experiment id")
    run = check_id(run_id, "run id")
    return f"experiments/{experiment}/metrics/{run}/{check_id(segment, 'segment')}.parquet"


def logged_models_prefix() -> str:
    return "models/"


def logged_model_key(model_id: str) -> str:
    return f"models/{check_id(model_id, 'model id')}.json"


def document_of_key(key: str) -> tuple[str, str, str] | None:
    """``("run", experiment_id, run_id)`` or ``("experiment", experiment_id, "")`` for
    the key of a run or experiment document; ``None`` for any other key."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "experiments" and parts[2] == "experiment.json":
        return ("experiment", parts[1], "")
    if (
        len(parts) == 4
        and parts[0] == "experiments"
        and parts[2] == "runs"
        and parts[3].endswith(".json")
    ):
        return ("run", parts[1], parts[3][: -len(".json")])
    return None
