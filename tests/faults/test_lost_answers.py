"""A write lands, its answer is lost, botocore retries: the retry must not turn into an error.

The proxy loses the answer of every write's first attempt (after the server applied it),
so each retry meets its own write: a put-if-absent gets 412 and a put-if-match gets 412
although the write they are retrying is the one stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from mlflow_plugin.objectstore import (
    AlreadyExists,
    PreconditionFailed,
    StorageUnavailable,
)
from mlflow_plugin.objectstore.s3 import S3ClientSettings, S3ObjectStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.faults.proxy import FaultPolicy, FaultProxy
from tests.servers import S3Endpoint
from tests.torture.figures import stored_points

LOSE_EVERY_FIRST_WRITE_ANSWER = FaultPolicy(
    rate=1.0,
    weights={"lost_reset": 1.0, "lost_500": 1.0},
    methods=frozenset({"PUT", "POST", "DELETE"}),
    first_attempt_only=True,
    seed=11,
)


@pytest.fixture
def lossy(s3_endpoint: S3Endpoint) -> Iterator[tuple[FaultProxy, S3ObjectStore]]:
    with FaultProxy(s3_endpoint.url, LOSE_EVERY_FIRST_WRITE_ANSWER) as proxy:
        settings = S3ClientSettings(endpoint_url=proxy.url, region="us-east-1")
        yield proxy, S3ObjectStore(s3_endpoint.shared_bucket, f"lost/{uuid.uuid4().hex}", settings)


def test_a_create_whose_answer_was_lost_succeeds(
    lossy: tuple[FaultProxy, S3ObjectStore],
) -> None:
    proxy, store = lossy
    etag = store.put_if_absent("claim.json", b'{"owner": "us"}')
    assert store.get("claim.json").etag == etag
    assert (proxy.stats.total_faults, proxy.stats.retries) == (1, 1)
    # Someone else's object is still someone else's, lost answer or not.
    with pytest.raises(AlreadyExists):
        store.put_if_absent("claim.json", b'{"owner": "us"}')


def test_a_swap_whose_answer_was_lost_succeeds(lossy: tuple[FaultProxy, S3ObjectStore]) -> None:
    _, store = lossy
    first = store.put_if_absent("doc.json", b"v1")
    second = store.put_if_match("doc.json", b"v2", first)
    assert store.get("doc.json").data == b"v2"
    assert store.get("doc.json").etag == second
    with pytest.raises(PreconditionFailed):
        store.put_if_match("doc.json", b"v3", first)  # a stale ETag stays a conflict
    assert store.get("doc.json").data == b"v2"


def test_a_conflict_that_never_clears_is_not_reported_as_taken(
    s3_endpoint: S3Endpoint,
) -> None:
    conflicts = FaultPolicy(rate=1.0, weights={"conflict_409": 1.0})
    with FaultProxy(s3_endpoint.url, conflicts) as proxy:
        settings = S3ClientSettings(endpoint_url=proxy.url, region="us-east-1")
        store = S3ObjectStore(s3_endpoint.shared_bucket, f"lost/{uuid.uuid4().hex}", settings)
        with pytest.raises(StorageUnavailable, match="kept conflicting"):
            store.put_if_absent("free.json", b"x")
        store.put("taken.json", b"x")
        with pytest.raises(AlreadyExists):
            store.put_if_absent("taken.json", b"y")


@pytest.fixture
def lossy_uri(moto_s3: S3Endpoint) -> Iterator[tuple[str, str, FaultProxy]]:
    """A tracking URI through the proxy, and one for the same root read directly."""
    root = f"{moto_s3.shared_bucket}/lost-mlflow/{uuid.uuid4().hex}"
    with FaultProxy(moto_s3.url, LOSE_EVERY_FIRST_WRITE_ANSWER) as proxy:
        yield (
            f"bucket+s3://{root}?endpoint_url={proxy.url}",
            f"bucket+s3://{root}?endpoint_url={moto_s3.url}",
            proxy,
        )


def test_mlflow_calls_whose_answers_were_lost_succeed_once(
    lossy_uri: tuple[str, str, FaultProxy],
) -> None:
    uri, direct_uri, proxy = lossy_uri
    client = MlflowClient(uri, registry_uri=uri)
    experiment_id = client.create_experiment("lost-answers")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 0.5, 1, 0), Metric("loss", 0.25, 2, 1)],
        params=[Param("lr", "0.1")],
        tags=[RunTag("phase", "train")],
    )
    client.set_tag(run_id, "temporary", "yes")
    client.delete_tag(run_id, "temporary")
    model = client.create_logged_model(experiment_id, name="net", source_run_id=run_id)
    client.set_logged_model_tags(model.model_id, {"kind": "cnn"})
    client.delete_logged_model_tag(model.model_id, "kind")
    client.log_model_params(model.model_id, {"layers": "3"})
    client.create_registered_model("lost-answers-model")
    version = client.create_model_version("lost-answers-model", "s3://somewhere/model", run_id)
    client.rename_experiment(experiment_id, "lost-answers-renamed")
    client.set_terminated(run_id)
    assert proxy.stats.total_faults > 20  # every write above lost its first answer

    direct = MlflowClient(direct_uri, registry_uri=direct_uri)
    run = direct.get_run(run_id)
    assert run.data.params == {"lr": "0.1"}
    assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")} == {
        "phase": "train"
    }
    assert [m.value for m in direct.get_metric_history(run_id, "loss")] == [0.5, 0.25]
    assert run.info.status == "FINISHED"
    stored_model = direct.get_logged_model(model.model_id)
    assert (stored_model.tags, stored_model.params) == ({}, {"layers": "3"})
    assert int(version.version) == 1
    versions = direct.search_model_versions("name='lost-answers-model'")
    assert [int(v.version) for v in versions] == [1]
    experiment = direct.get_experiment(experiment_id)
    assert experiment.name == "lost-answers-renamed"
    assert [e.name for e in direct.search_experiments()].count("lost-answers-renamed") == 1
    assert direct.get_experiment_by_name("lost-answers") is None


def test_mutations_reapplied_after_a_lost_swap_answer_change_nothing(tmp_path: Path) -> None:
    """When the retry cannot tell (another writer swapped in between), the CAS loop re-reads
    and re-applies the mutation: merges and (writer, sequence) batches make that harmless."""
    store = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    experiment_id = store.create_experiment("reapplied")
    run_id = store.create_run(experiment_id, "u", 0, [], "r").info.run_id
    inner = store.object_store
    original = inner.put_if_match
    lost = 0

    def swap_then_lose_the_answer(key: str, data: bytes, etag: str) -> str:
        nonlocal lost
        original(key, data, etag)
        lost += 1
        raise PreconditionFailed("answer lost after the write landed")

    inner.put_if_match = swap_then_lose_the_answer  # type: ignore[method-assign]
    try:
        for step in range(5):
            store.log_batch(
                run_id,
                [Metric("m", float(step), step, step)],
                [Param(f"p{step}", str(step))],
                [RunTag("t", str(step))],
            )
            store.flush()
    finally:
        inner.put_if_match = original  # type: ignore[method-assign]
    assert lost >= 10  # each param swap and each batch swap lost its answer
    assert sorted(stored_points(inner, run_id).values()) == [1] * 5
    run = store.get_run(run_id)
    assert run.data.params == {f"p{step}": str(step) for step in range(5)}
    assert run.data.tags["t"] == "4"
    assert run.data.metrics == {"m": 4.0}


def test_a_compaction_that_cannot_finish_does_not_fail_the_write(tmp_path: Path) -> None:
    """Deleting merged segments keeps failing: the batches are stored, the caller hears nothing."""
    store = BucketTrackingStore(f"bucket+file://{tmp_path / 'root'}")
    run_id = store.create_run(store.create_experiment("compaction"), "u", 0, [], "r").info.run_id

    def unavailable(key: str) -> None:
        raise StorageUnavailable(f"deleting {key!r}: endpoint failing")

    store.object_store.delete = unavailable  # type: ignore[method-assign]
    for step in range(20):  # the 17th segment triggers a compaction
        store.log_batch(run_id, [Metric("m", float(step), step, step)], [], [])
        store.flush()
    assert sorted(stored_points(store.object_store, run_id).values()) == [1] * 20
    assert len(store.get_metric_history(run_id, "m")) == 20
