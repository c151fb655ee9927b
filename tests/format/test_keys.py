"""Keys: user input reaches a key only as a checked id or a hash, never escaping the root."""

from __future__ import annotations

import hashlib

import pytest

from mlflow_plugin.format import keys
from mlflow_plugin.format.keys import InvalidId
from mlflow_plugin.objectstore.errors import InvalidKey

BAD_IDS = [
    "",
    "..",
    "../x",
    "a/b",
    "/abs",
    "-lead",
    "_lead",
    "a b",
    "é",
    "a" * 129,
    "a\x00",
    None,
    5,
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_an_invalid_id_is_refused_before_any_key_exists(bad: object) -> None:
    assert not keys.is_valid_id(bad)
    for make in (
        lambda: keys.experiment_key(bad),  # type: ignore[arg-type]
        lambda: keys.run_key("1", bad),  # type: ignore[arg-type]
        lambda: keys.run_key(bad, "r"),  # type: ignore[arg-type]
        lambda: keys.run_location_key(bad),  # type: ignore[arg-type]
        lambda: keys.logged_model_key(bad),  # type: ignore[arg-type]
        lambda: keys.metric_segment_key("1", "r", bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidId):
            make()


def test_an_invalid_id_is_an_invalid_key() -> None:
    assert issubclass(InvalidId, InvalidKey)


def test_valid_ids_make_the_documented_keys() -> None:
    assert keys.is_valid_id("A" + "b-_9" * 31 + "xyz")  # 128 characters
    assert keys.experiment_key("0") == "experiments/0/experiment.json"
    assert keys.run_key("1", "r_1-x") == "experiments/1/runs/r_1-x.json"
    assert keys.run_location_key("r") == "run-locations/r.json"
    assert keys.metric_segment_key("1", "r", "w-0000000001") == (
        "experiments/1/metrics/r/w-0000000001.parquet"
    )
    assert keys.logged_model_key("m-1") == "models/m-1.json"


def test_a_name_reaches_its_key_only_hashed() -> None:
    name = "../../etc/passwd ünï"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    assert keys.experiment_name_key(name) == f"experiment-names/{digest}.json"


def test_document_keys_are_told_apart() -> None:
    assert keys.document_of_key("experiments/1/runs/r.json") == ("run", "1", "r")
    assert keys.document_of_key("experiments/1/experiment.json") == ("experiment", "1", "")
    assert keys.document_of_key("experiments/1/metrics/r/s.parquet") is None
