"""Processes race to create one experiment name and one logged-model name, through faults.

Exactly one process creates the experiment; every other one gets MLflow's
RESOURCE_ALREADY_EXISTS, even when the endpoint lost the answer to the winner's write
or to its own. Logged-model names are not unique in MLflow (its SQL store gives each
``create_logged_model`` a model of its own, whatever the name): every racer gets its
own model id, and all of them are found.
"""

from __future__ import annotations

import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.faults.proxy import FaultPolicy
from tests.processes import SPAWN
from tests.sqlite_reference import migrated_sqlite_uri
from tests.torture.conftest import FaultyRoot
from tests.torture.figures import Figures, record, size

pytestmark = pytest.mark.torture

RACERS = size(4, 16)
ROUNDS = size(3, 10)
FAULT_RATE = 0.25


def _race(uri: str, names: list[str], worker: int, barrier: Any, results: Any) -> None:
    """Race for each name in turn; report [(outcome, model id)] per round, or the error."""
    rounds: list[tuple[tuple[str, str], str]] = []
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)  # open the store before the races start
        for name in names:
            barrier.wait(120)
            try:
                outcome = ("created", client.create_experiment(name))
            except MlflowException as exc:
                outcome = ("refused", str(exc.error_code))
            barrier.wait(120)  # every racer has an answer: the experiment exists now
            experiment = client.get_experiment_by_name(name)
            assert experiment is not None, f"{name} not found after the race"
            barrier.wait(120)
            model = client.create_logged_model(experiment.experiment_id, name=f"{name}-model")
            rounds.append((outcome, model.model_id))
        results.put((worker, rounds, None))
    except BaseException:
        barrier.abort()  # the others stop waiting for this racer
        results.put((worker, rounds, traceback.format_exc()))


def test_mlflow_gives_logged_models_of_one_name_ids_of_their_own(tmp_path: Path) -> None:
    """The reference: MLflow's own SQL store on sqlite."""
    client = MlflowClient(migrated_sqlite_uri(tmp_path / "mlflow.db"))
    experiment_id = client.create_experiment("reference")
    first = client.create_logged_model(experiment_id, name="same")
    second = client.create_logged_model(experiment_id, name="same")
    assert first.model_id != second.model_id
    found = client.search_logged_models([experiment_id], filter_string="name = 'same'")
    assert {m.model_id for m in found} == {first.model_id, second.model_id}


@pytest.mark.timeout(size(300, 1800))
def test_racing_processes_create_one_experiment_and_a_model_each(
    faulty_root: FaultyRoot,
) -> None:
    started = time.monotonic()
    MlflowClient(faulty_root.direct_uri).search_experiments()  # the root exists up front
    faulty_root.proxy.set_policy(FaultPolicy(rate=FAULT_RATE, seed=9))
    names = [f"race-{round_}-{uuid.uuid4().hex[:6]}" for round_ in range(ROUNDS)]
    barrier = SPAWN.Barrier(RACERS)
    results = SPAWN.Queue()
    racers = [
        SPAWN.Process(target=_race, args=(faulty_root.uri, names, w, barrier, results))
        for w in range(RACERS)
    ]
    for process in racers:
        process.start()
    reports = [results.get(timeout=size(240, 1500)) for _ in range(RACERS)]
    for process in racers:
        process.join(60)
    errors = sorted((error for *_, error in reports if error), key=len)
    assert not errors, errors[-1]  # the longest: the first failure, not a broken barrier
    stats = faulty_root.proxy.stats

    direct = MlflowClient(faulty_root.direct_uri)
    all_names = [e.name for e in direct.search_experiments(max_results=1000)]
    for round_, name in enumerate(names):
        this_round = [rounds[round_] for _, rounds, _ in reports]
        created = [value for (kind, value), _ in this_round if kind == "created"]
        refused = [value for (kind, value), _ in this_round if kind == "refused"]
        assert len(created) == 1, this_round
        assert refused == ["RESOURCE_ALREADY_EXISTS"] * (RACERS - 1), this_round
        experiment = direct.get_experiment_by_name(name)
        assert experiment is not None and experiment.experiment_id == created[0]
        assert all_names.count(name) == 1
        model_ids = {model_id for _, model_id in this_round}
        assert len(model_ids) == RACERS
        found = direct.search_logged_models(
            [experiment.experiment_id], filter_string=f"name = '{name}-model'", max_results=100
        )
        assert {m.model_id for m in found} == model_ids

    figures = Figures(
        "racing creates, faults 25%",
        notes=(
            f"{RACERS} processes x {ROUNDS} rounds: {ROUNDS} experiments created, "
            f"{ROUNDS * (RACERS - 1)} RESOURCE_ALREADY_EXISTS, {RACERS * ROUNDS} logged models"
        ),
    )
    figures.add_proxy(stats)
    record(figures, started)
    assert stats.total_faults > 0
