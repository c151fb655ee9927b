"""Damaged objects planted directly in a root, then read through MLflow's client.

Someone with write access to the bucket (or a disk fault, or a half-finished copy) can leave
anything under a key: truncated JSON, JSON of the wrong shape, another run's document, a
segment that is not Parquet, a manifest naming a segment that is gone. Reads of the damaged
object must fail with ``MlflowException(INTERNAL_ERROR)`` whose message names the object;
never a raw ``KeyError``/``ArrowInvalid``, never another run's data in its place. Every
other run reads back exactly as before (get_run, metric history, search).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import decode, encode
from mlflow_plugin.objectstore import ObjectStore, open_object_store
from tests.hostile.corpus import T0, raised_in_plugin, register, to_json
from tests.servers import S3Endpoint


@dataclass
class Damaged:
    """A root with two runs, one of which (the victim) is then damaged."""

    client: MlflowClient
    store: ObjectStore
    experiment_id: str
    victim: str
    healthy: str
    healthy_before: object

    def run_key(self, run_id: str) -> str:
        return keys.run_key(self.experiment_id, run_id)

    def segment_keys(self, run_id: str) -> list[str]:
        doc = decode(self.store.get(self.run_key(run_id)).data)
        return [
            keys.metric_segment_key(self.experiment_id, run_id, s["name"]) for s in doc["segments"]
        ]

    def healthy_now(self) -> object:
        return {
            "run": to_json(self.client.get_run(self.healthy)),
            "history": to_json(self.client.get_metric_history(self.healthy, "loss")),
        }


def _fill(uri: str) -> Damaged:
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("damaged")
    ids = []
    for name in ("victim", "healthy"):
        run_id = client.create_run(experiment_id, start_time=T0, run_name=name).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (i + 1), T0 + i, i) for i in range(5)],
            params=[Param("lr", "0.1")],
            tags=[RunTag("who", name)],
        )
        ids.append(run_id)
    client._tracking_client.store.flush()
    damaged = Damaged(
        client, open_object_store(uri), experiment_id, ids[0], ids[1], healthy_before=None
    )
    damaged.healthy_before = damaged.healthy_now()
    return damaged


def _parquet(columns: dict[str, list[object]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


Plant = Callable[[Damaged], str]  # damages the root, returns the key a message must name


def _replace_run_doc(make: Callable[[Damaged, bytes], bytes]) -> Plant:
    def plant(d: Damaged) -> str:
        key = d.run_key(d.victim)
        d.store.put(key, make(d, d.store.get(key).data))
        return key

    return plant


def _edit_run_doc(edit: Callable[[dict[str, object]], None]) -> Plant:
    def make(d: Damaged, data: bytes) -> bytes:
        doc = decode(data)
        edit(doc)
        return encode(doc)

    return _replace_run_doc(make)


def _replace_segment(make: Callable[[bytes], bytes]) -> Plant:
    def plant(d: Damaged) -> str:
        key = d.segment_keys(d.victim)[0]
        d.store.put(key, make(d.store.get(key).data))
        return key

    return plant


def _delete_segment(d: Damaged) -> str:
    key = d.segment_keys(d.victim)[0]
    d.store.delete(key)
    return key


def _replace_pointer(data: bytes) -> Plant:
    def plant(d: Damaged) -> str:
        key = keys.run_location_key(d.victim)
        d.store.put(key, data)
        return key

    return plant


RUN_DOCUMENT_DAMAGE: dict[str, Plant] = {
    "run_doc_truncated": _replace_run_doc(lambda d, data: _truncate(data)),
    "run_doc_zero_bytes": _replace_run_doc(lambda d, data: b""),
    "run_doc_not_utf8": _replace_run_doc(lambda d, data: b"\xff\xfe\x00garbage"),
    "run_doc_json_array": _replace_run_doc(lambda d, data: b"[1, 2, 3]"),
    "run_doc_json_null": _replace_run_doc(lambda d, data: b"null"),
    "run_doc_deep_nesting": _replace_run_doc(lambda d, data: b"[" * 200_000),
    "run_doc_missing_fields": _replace_run_doc(lambda d, data: b'{"run_id": "x"}'),
    "run_doc_params_not_a_dict": _edit_run_doc(lambda doc: doc.update(params="lr=0.1")),
    "run_doc_tag_value_not_a_string": _edit_run_doc(lambda doc: doc.update(tags={"who": 7})),
    "run_doc_unknown_status": _edit_run_doc(lambda doc: doc.update(status="EXPLODED")),
    "run_doc_bad_latest_metric": _edit_run_doc(
        lambda doc: doc.update(latest_metrics={"loss": {"value": "high"}})
    ),
    "run_doc_bad_segment_entry": _edit_run_doc(lambda doc: doc.update(segments=[{"name": 1}])),
    "run_doc_bad_float_marker": _replace_run_doc(
        lambda d, data: data.replace(b'"latest_metrics":{', b'"latest_metrics":{"x":{"$float":5},')
    ),
    "run_doc_of_another_run": _replace_run_doc(
        lambda d, data: d.store.get(d.run_key(d.healthy)).data
    ),
    "run_pointer_garbage": _replace_pointer(b"\x00garbage"),
    "run_pointer_wrong_shape": _replace_pointer(b'{"experiment": "1"}'),
}
SEGMENT_DAMAGE: dict[str, Plant] = {
    "segment_zero_bytes": _replace_segment(lambda data: b""),
    "segment_random_bytes": _replace_segment(lambda data: random.Random(7).randbytes(512)),
    "segment_truncated": _replace_segment(_truncate),
    "segment_other_columns": _replace_segment(lambda data: _parquet({"x": [1, 2]})),
    "segment_wrong_column_types": _replace_segment(
        lambda data: _parquet({"key": [1], "step": ["a"], "timestamp": [0.5], "value": ["v"]})
    ),
    "segment_named_by_manifest_missing": _delete_segment,
}
for _name in (*RUN_DOCUMENT_DAMAGE, *SEGMENT_DAMAGE):
    for _backend in ("bucket_file", "bucket_s3"):
        register(f"corrupt_{_name}__{_backend}", "corrupt objects")


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "bucket_file":
        return f"bucket+file://{tmp_path}/root"
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    return f"bucket+s3://{moto.shared_bucket}/hostile-corrupt/{uuid4().hex}?endpoint_url={moto.url}"


def assert_names_object(call: Callable[[], object], key: str) -> None:
    with pytest.raises(MlflowException) as raised:
        call()
    assert raised.value.error_code == "INTERNAL_ERROR", raised.value.message
    assert key in raised.value.message, f"{key!r} not named in: {raised.value.message}"


def _reopened(d: Damaged, uri: str) -> MlflowClient:
    """A client on a fresh store instance, as in another process: no cache hides the damage.

    MLflow caches one store per URI string; another spelling of the same root gets a new one.
    """
    spelling = f"{uri}{'&' if '?' in uri else '?'}flush_interval=3"
    client = MlflowClient(tracking_uri=spelling)
    d.client = client
    return client


def check_search_survives(client: MlflowClient, d: Damaged, key: str) -> None:
    """search_runs either names the damaged object or answers without it; healthy runs intact."""
    try:
        found = client.search_runs([d.experiment_id])
    except MlflowException as exc:
        assert exc.error_code == "INTERNAL_ERROR" and key in exc.message, exc.message
        return
    by_id = {run.info.run_id: run for run in found}
    assert d.healthy in by_id
    assert to_json(by_id[d.healthy]) == d.healthy_before["run"]  # type: ignore[index]
    assert len(found) == len(by_id), "a run was listed twice"


@pytest.mark.parametrize("damage", sorted(RUN_DOCUMENT_DAMAGE))
def test_damaged_run_document(damage: str, uri: str) -> None:
    d = _fill(uri)
    key = RUN_DOCUMENT_DAMAGE[damage](d)
    client = _reopened(d, uri)
    assert_names_object(lambda: client.get_run(d.victim), key)
    assert_names_object(lambda: client.get_metric_history(d.victim, "loss"), key)
    assert_names_object(lambda: client.set_tag(d.victim, "after", "damage"), key)
    check_search_survives(client, d, key)
    assert d.healthy_now() == d.healthy_before


@pytest.mark.parametrize("damage", sorted(SEGMENT_DAMAGE))
def test_damaged_metric_segment(damage: str, uri: str) -> None:
    d = _fill(uri)
    key = SEGMENT_DAMAGE[damage](d)
    client = _reopened(d, uri)
    assert_names_object(lambda: client.get_metric_history(d.victim, "loss"), key)
    assert client.get_run(d.victim).data.metrics == {"loss": 0.2}  # the manifest is intact
    check_search_survives(client, d, key)
    assert d.healthy_now() == d.healthy_before


def test_raw_errors_are_never_the_answer(uri: str) -> None:
    """The helper above must be able to fail: a raw error from the store is not accepted."""
    d = _fill(uri)
    key = RUN_DOCUMENT_DAMAGE["run_doc_truncated"](d)
    client = _reopened(d, uri)
    with pytest.raises(MlflowException) as raised:
        client.get_run(d.victim)
    assert raised_in_plugin(raised.value) and key in raised.value.message
    with pytest.raises(pytest.fail.Exception):  # a read that works is no named failure
        assert_names_object(lambda: client.get_run(d.healthy), key)
