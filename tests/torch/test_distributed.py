"""Two CPU ranks (gloo) training a DistributedDataParallel model with the helpers on.

Default: one run per helper, holding rank 0's points only. With
``MLFLOW_BUCKET_TORCH_ALL_RANKS=1``: the same runs, every rank's metrics and histograms
under ``rank<N>/``, the run's params logged once.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mlflow import MlflowClient
from torch import nn

from mlflow_plugin.torch.distributed import ALL_RANKS_ENV
from tests.servers import TEST_CREDENTIALS, S3Endpoint
from tests.torch.conftest import history

WORLD = 2
STEPS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train_on_rank(rank: int, uri: str, port: int, all_ranks: bool) -> None:
    """One rank: autolog + watch on a DDP model, then a SummaryWriter, as a script would."""
    os.environ.update(TEST_CREDENTIALS)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ[ALL_RANKS_ENV] = "1" if all_ranks else "0"
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from mlflow_plugin.torch import (
            SummaryWriter,
            autolog,
            log_config,
            log_histogram,
            log_model_graph,
        )

        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("ddp")
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        inputs = torch.full((4, 3), float(rank + 1))
        config = {"lr": 0.1, "world": WORLD}
        with autolog(
            model, optimizer, config, log_model=False, watch="gradients", log_freq=2
        ) as run:
            for _ in range(STEPS):
                optimizer.zero_grad()
                loss = model(inputs).pow(2).mean()
                loss.backward()
                optimizer.step()
                run.log({"loss": loss, "rank": float(rank)})
            log_histogram("inputs", inputs, 0)
            # What describes the run comes from rank 0 alone: no conflicting params.
            log_config({"launched_on_rank": rank})
            log_model_graph(model.module, inputs, "graph_by_hand")
        with SummaryWriter() as writer:
            writer.add_scalar("x", float(rank), 0)
        dist.barrier()  # every rank's points are stored before any process leaves
    finally:
        dist.destroy_process_group()


@pytest.fixture(params=["file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "file":
        yield f"bucket+file://{tmp_path}/root"
        return
    moto: S3Endpoint = request.getfixturevalue("moto_s3")
    yield f"bucket+s3://{moto.shared_bucket}/ddp/{uuid.uuid4().hex}?endpoint_url={moto.url}"


def spawn(uri: str, all_ranks: bool) -> dict[str, mlflow.entities.Run]:
    """Run both ranks to the end; the experiment's runs by kind (autolog, writer)."""
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("ddp")  # as a launcher would, before the ranks
    mp.spawn(train_on_rank, args=(uri, free_port(), all_ranks), nprocs=WORLD, join=True)
    runs = client.search_runs([experiment_id])
    assert len(runs) == 2, [r.data.metrics for r in runs]  # none of rank 1's own
    by_kind = {("autolog" if "loss" in str(r.data.metrics) else "writer"): r for r in runs}
    assert set(by_kind) == {"autolog", "writer"}
    return by_kind


def test_only_rank_zero_logs_by_default(root: str) -> None:
    runs = spawn(root, all_ranks=False)
    client = MlflowClient(root)
    run_id = runs["autolog"].info.run_id
    assert history(client, run_id, "rank") == [(s, 0.0) for s in range(1, STEPS + 1)]
    assert len(history(client, run_id, "loss")) == STEPS
    assert not any(k.startswith("rank1/") for k in runs["autolog"].data.metrics)
    # watch saw the inner module's parameters through the DDP wrapper.
    assert [s for s, _ in history(client, run_id, "gradients/weight/norm")] == [1, 2, 4]
    assert runs["autolog"].data.params["launched_on_rank"] == "0"
    assert history(client, runs["writer"].info.run_id, "x") == [(0, 0.0)]


def test_every_rank_logs_under_its_prefix_when_asked(root: str) -> None:
    runs = spawn(root, all_ranks=True)
    client = MlflowClient(root)
    run = runs["autolog"]
    for rank in range(WORLD):
        steps = list(range(1, STEPS + 1))
        assert history(client, run.info.run_id, f"rank{rank}/rank") == [
            (s, float(rank)) for s in steps
        ]
        norms = history(client, run.info.run_id, f"rank{rank}/gradients/weight/norm")
        assert [s for s, _ in norms] == [1, 2, 4]
        assert f"rank{rank}/inputs/mean" in run.data.metrics
    assert "loss" not in run.data.metrics and "rank0/loss" in run.data.metrics
    # The run's params: logged once, by rank 0.
    assert (run.data.params["world"], run.data.params["launched_on_rank"]) == ("2", "0")
    assert history(client, runs["writer"].info.run_id, "rank1/x") == [(0, 1.0)]
    assert history(client, runs["writer"].info.run_id, "rank0/x") == [(0, 0.0)]
