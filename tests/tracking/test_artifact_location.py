"""An artifact location urllib cannot parse, or no string at all, is MLflow's input error.

MLflow's SQL store lets urllib's ``ValueError`` (or an ``AttributeError``) escape from
``resolve_uri_if_local`` here, which its server answers with HTTP 500; the bucket store
refuses the location as INVALID_PARAMETER_VALUE and creates nothing. How valid locations
are resolved is compared with the SQL store in the differential suite
(``scenarios_experiments.py``, ``experiment_artifact_location_*``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow.exceptions import MlflowException

from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.tracking.spool_helpers import root_uri

__all__ = ["root_uri"]  # the fixture: a fresh root on each scheme


@pytest.fixture
def store(root_uri: str) -> Iterator[BucketTrackingStore]:
    opened = BucketTrackingStore(root_uri)
    yield opened
    opened.close()


@pytest.mark.parametrize("location", ["//[x/y", "file://[x/y", 12, ["relative"]])
def test_unparsable_location_is_invalid_and_creates_nothing(
    store: BucketTrackingStore, location: object
) -> None:
    with pytest.raises(MlflowException) as raised:
        store.create_experiment("unparsable", location)  # type: ignore[arg-type]
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert store.get_experiment_by_name("unparsable") is None
    assert [e.name for e in store.search_experiments()] == ["Default"]
