"""What one logging call costs and answers: in a forked child, with params only, per swap.

Each scenario runs on bucket+file and bucket+s3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys, schema
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.objectstore.os_failures import in_forked_child
from tests.tracking.spool_helpers import new_run, root_uri, with_options

__all__ = ["root_uri"]  # the fixture, imported for pytest


def _store(uri: str) -> BucketTrackingStore:
    return BucketTrackingStore(
        with_options(uri, flush_interval="3600"), recover_in_background=False
    )


def _answers_in_a_forked_child(store: BucketTrackingStore, run_id: str) -> list[str]:
    """What two log_metric calls answer in a forked child: 'ok' or the exception's kind."""

    def log_twice() -> list[str]:
        answers = []
        for step in (1, 2):
            try:
                store.log_metric(run_id, Metric("loss", 1.0, 1, step))
                answers.append("ok")
            except MlflowException as exc:
                answers.append(f"MlflowException {exc.error_code} {exc.message}")
            except Exception as exc:  # what the fix rules out
                answers.append(f"raw {type(exc).__name__}")
        return answers

    return in_forked_child(log_twice)


def test_a_forked_child_meets_a_damaged_run_as_mlflow_errors(root_uri: str) -> None:
    store = _store(root_uri)
    experiment_id, run_id = new_run(store, "forked")
    store.log_metric(run_id, Metric("loss", 0.0, 0, 0))
    store.flush()
    key = keys.run_key(experiment_id, run_id)
    store.object_store.put(key, b'{"run_id": "cut short')
    answers = _answers_in_a_forked_child(store, run_id)
    assert [a.split(" ")[:2] for a in answers] == [["MlflowException", "INTERNAL_ERROR"]] * 2
    assert all(key in a for a in answers)


def test_a_forked_child_logging_to_a_purged_run_is_told_the_run_is_gone(root_uri: str) -> None:
    store = _store(root_uri)
    experiment_id, run_id = new_run(store, "forked")
    store.log_metric(run_id, Metric("loss", 0.0, 0, 0))
    store.flush()
    store.object_store.delete(keys.run_key(experiment_id, run_id))
    answers = _answers_in_a_forked_child(store, run_id)
    assert [a.split(" ")[:2] for a in answers] == [
        ["MlflowException", "RESOURCE_DOES_NOT_EXIST"]
    ] * 2


def test_a_forked_child_writes_through(root_uri: str) -> None:
    store = _store(root_uri)
    _, run_id = new_run(store, "forked")
    store.log_metric(run_id, Metric("loss", 0.0, 0, 0))
    store.flush()
    assert _answers_in_a_forked_child(store, run_id) == ["ok", "ok"]
    reader = BucketTrackingStore(with_options(root_uri, spool="false"))
    assert [m.step for m in reader.get_metric_history(run_id, "loss")] == [0, 1, 2]


def _open_log_lines(store: BucketTrackingStore) -> int:
    spool = store.context.buffer._spool
    assert spool is not None
    return sum(len(p.read_bytes().splitlines()) for p in Path(spool.folder).glob("open-*.jsonl"))


def test_a_call_with_params_only_writes_no_spool_line(root_uri: str) -> None:
    store = _store(root_uri)
    _, run_id = new_run(store, "params")
    store.log_param(run_id, Param("lr", "0.1"))
    store.log_param(run_id, Param("layers", "4"))
    store.log_batch(run_id, [], [Param("seed", "1")], [])
    assert _open_log_lines(store) == 0
    store.log_metric(run_id, Metric("loss", 0.0, 0, 0))
    assert _open_log_lines(store) == 1


def test_a_run_document_is_checked_once_per_read_and_per_swap(
    root_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(root_uri)
    experiment_id, run_id = new_run(store, "checked")
    store.log_metric(run_id, Metric("loss", 0.0, 0, 0))
    store.flush()
    run_key = keys.run_key(experiment_id, run_id)
    checked: list[str] = []
    check = schema.document_problems

    def counted(key: str, doc: Any) -> list[str]:
        if key == run_key:
            checked.append(key)
        return check(key, doc)

    monkeypatch.setattr(schema, "document_problems", counted)
    store.get_run(run_id)
    assert len(checked) == 1
    store.log_metric(run_id, Metric("loss", 1.0, 1, 1))
    store.flush()  # one compare-and-swap by the buffered upload
    assert len(checked) == 2
    store.update_run_info(run_id, RunStatus.FINISHED, 5, None)  # one swap
    assert len(checked) == 3
