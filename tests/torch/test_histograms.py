"""Histograms: bins equal numpy's, summary metrics, step images at flush, immutable raw chunks."""

from __future__ import annotations

import math
import time
import warnings

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mlflow_plugin.summaries.histograms import percentiles
from mlflow_plugin.torch import SummaryWriter, flush, log_histogram, read_histograms
from mlflow_plugin.torch.histograms import (
    HostSnapshot,
    device_histogram,
    device_histograms,
    histogram_rows,
    host_histograms,
    unpack_histogram,
    unpack_histograms,
)
from tests.torch.conftest import artifact_paths, history, image_steps


def host(values: torch.Tensor, bins: int) -> tuple[list[float], list[float]]:
    stats = unpack_histogram(device_histogram(values, bins), "k", 0, 0)
    return stats.counts, stats.edges


@pytest.mark.parametrize(
    "values",
    [
        torch.randn(10_000, generator=torch.Generator().manual_seed(0)),
        torch.rand(37, 5, generator=torch.Generator().manual_seed(1)) * 100 - 20,
        torch.arange(100, dtype=torch.int64),
        torch.full((7,), 3.0),
        torch.tensor([1.5]),
    ],
    ids=["normal", "uniform-2d", "integers", "constant", "single"],
)
@pytest.mark.parametrize("bins", [1, 10, 64])
def test_bins_match_numpy_histogram(values: torch.Tensor, bins: int) -> None:
    counts, edges = host(values, bins)
    expected_counts, expected_edges = np.histogram(values.numpy().astype(np.float64), bins=bins)
    assert counts == expected_counts.tolist()
    assert np.allclose(edges, expected_edges, rtol=0, atol=1e-12)


def test_batched_histograms_equal_one_at_a_time() -> None:
    generator = torch.Generator().manual_seed(5)
    tensors = [
        torch.randn(3, 4, generator=generator),
        torch.full((6,), 2.0),
        torch.tensor([1.0, math.nan, -math.inf, 4.0]),
        torch.full((2,), math.nan),
        torch.arange(50, dtype=torch.int64),
    ]
    rows = device_histograms(tensors, 8)
    assert rows.shape == (5, 8 + 8)
    for row, tensor in zip(rows, tensors, strict=True):
        assert torch.equal(row, device_histogram(tensor, 8))
    records = unpack_histograms(rows, list("abcde"), 3, 7)
    assert [r.key for r in records] == list("abcde") and {r.step for r in records} == {3}
    assert [(r.num, r.nonfinite) for r in records] == [(12, 0), (6, 0), (2, 2), (0, 2), (50, 0)]


def test_cpu_tensors_are_copied_in_the_loop_and_binned_later() -> None:
    # On the CPU the binning would run in the training thread: the loop copies the values
    # (they may change in place at the next step) and the worker bins the copy.
    weight = torch.randn(4, 5, generator=torch.Generator().manual_seed(2), requires_grad=True)
    counts = torch.arange(7, dtype=torch.int64)
    expected = device_histograms([weight, counts], 8)
    queued = histogram_rows([weight, counts], 8)
    assert isinstance(queued, HostSnapshot)
    with torch.no_grad():
        weight.mul_(3.0)  # the optimizer's in-place update, before the worker runs
    counts.add_(100)
    assert torch.equal(queued.packed(), expected)  # mixed dtypes: both held exactly
    assert unpack_histograms(queued, ["w", "n"], 1, 2)[1].num == 7


def test_copies_waiting_for_the_worker_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Copies of a large model's tensors, waiting for the drain, would double its memory.
    monkeypatch.setattr("mlflow_plugin.torch.histograms._SNAPSHOT_ELEMENTS", 10)
    monkeypatch.setattr("mlflow_plugin.torch.histograms._snapshot_elements", 0)
    values = torch.randn(11, generator=torch.Generator().manual_seed(4))
    queued = histogram_rows([values], 4)
    assert isinstance(queued, torch.Tensor) and torch.equal(queued, device_histograms([values], 4))
    first = histogram_rows([values[:6]], 4)
    assert isinstance(first, HostSnapshot)
    assert isinstance(histogram_rows([values[:6]], 4), torch.Tensor)  # 12 would wait: now
    first.packed()
    del first  # binned and dropped: its room is free again
    assert isinstance(histogram_rows([values[:6]], 4), HostSnapshot)


def test_an_unusual_dtype_is_binned_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its error must reach the caller, not fail the worker's drain later; no room is held.
    monkeypatch.setattr("mlflow_plugin.torch.histograms._snapshot_elements", 0)
    with pytest.warns(UserWarning, match="imaginary"):  # complex: cast to real, said here
        binned = histogram_rows([torch.randn(5), torch.randn(3, dtype=torch.complex64)], 8)
    assert isinstance(binned, torch.Tensor)
    queued = histogram_rows([torch.tensor([1, 2, 3], dtype=torch.uint32)], 4)
    assert isinstance(queued, torch.Tensor)
    from mlflow_plugin.torch import histograms

    assert histograms._snapshot_elements == 0


def test_histogram_rows_refuses_what_device_histograms_refuses() -> None:
    with pytest.raises(ValueError, match="bins"):
        histogram_rows([torch.ones(3)], 0)
    with pytest.raises(ValueError, match="empty"):
        histogram_rows([torch.ones(3), torch.ones(0)], 4)


def test_non_finite_values_are_left_out_and_counted() -> None:
    values = torch.tensor([0.0, 1.0, math.nan, math.inf, -math.inf, 2.0])
    stats = unpack_histogram(device_histogram(values, 4), "k", 0, 0)
    assert stats.counts == np.histogram([0.0, 1.0, 2.0], bins=4)[0].tolist()
    assert (stats.num, stats.nonfinite, stats.min, stats.max, stats.sum) == (3, 3, 0.0, 2.0, 3.0)


def test_percentiles_follow_the_data() -> None:
    values = torch.randn(100_000, generator=torch.Generator().manual_seed(2))
    bands = percentiles(unpack_histogram(device_histogram(values, 64), "k", 0, 0))
    width = (values.max() - values.min()).item() / 64
    for name, q in [("p7", 6.68), ("p16", 15.87), ("p50", 50.0), ("p84", 84.13)]:
        assert bands[name] == pytest.approx(np.percentile(values.numpy(), q), abs=width)
    assert (bands["p0"], bands["p100"]) == (values.min().item(), values.max().item())


def test_a_logged_histogram_is_metrics_images_raw_bins_and_an_overview(
    any_client: MlflowClient,
) -> None:
    client = any_client
    generator = torch.Generator().manual_seed(3)
    logged = {step: torch.randn(500, generator=generator) + step / 100 for step in (0, 100, 200)}
    with mlflow.start_run() as run:
        for step, values in logged.items():
            log_histogram("weights/fc1", values, step, bins=16)
        flush()
    run_id = run.info.run_id
    # Two charts per key in the Model metrics tab, exact (from the sums, not the bins).
    keys = sorted(k for k in client.get_run(run_id).data.metrics if k.startswith("weights/"))
    assert keys == ["weights/fc1/mean", "weights/fc1/std"]
    means, stds = history(client, run_id, keys[0]), history(client, run_id, keys[1])
    assert [s for s, _ in means] == [s for s, _ in stds] == [0, 100, 200]
    for (_, mean), (_, std), values in zip(means, stds, logged.values(), strict=True):
        assert mean == pytest.approx(values.double().mean().item(), rel=1e-6)
        assert std == pytest.approx(values.double().std(unbiased=False).item(), rel=1e-6)
    assert image_steps(client, run_id, "histograms/weights/fc1") == [0, 100, 200]
    assert "histograms/weights/fc1/overview.png" in artifact_paths(client, run_id, "histograms")

    records = read_histograms(run_id, "weights/fc1")
    assert [r.step for r in records] == [0, 100, 200]
    for record, values in zip(records, logged.values(), strict=True):
        counts, edges = np.histogram(values.numpy().astype(np.float64), bins=16)
        assert record.counts == counts.tolist() and np.allclose(record.edges, edges)
        assert record.num == 500 and record.sum == pytest.approx(values.double().sum().item())


def test_pictures_are_drawn_at_flush_not_per_step(client: MlflowClient) -> None:
    """The periodic drain stores metrics and bins; pictures wait for an explicit flush."""
    with mlflow.start_run() as run:
        for step in range(3):
            log_histogram("h", torch.arange(10.0) * (step + 1), step)
        deadline = time.monotonic() + 60
        while len(history(client, run.info.run_id, "h/mean")) < 3:  # the background drain
            assert time.monotonic() < deadline, "the periodic drain never logged the metrics"
            time.sleep(0.1)
        assert image_steps(client, run.info.run_id, "histograms/h") == []
        assert artifact_paths(client, run.info.run_id, "histograms") == []
        flush()
    assert image_steps(client, run.info.run_id, "histograms/h") == [0, 1, 2]
    assert history(client, run.info.run_id, "h/mean") == [(0, 4.5), (1, 9.0), (2, 13.5)]


def test_non_finite_values_give_nan_summary_metrics(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        log_histogram("all_nan", torch.full((5,), math.nan), 0, image=False)
        log_histogram("some_inf", torch.tensor([1.0, math.inf]), 0, image=False)
        flush()
    for key in ("all_nan/mean", "all_nan/std", "some_inf/mean"):
        [(step, value)] = history(client, run.info.run_id, key)
        assert step == 0 and math.isnan(value), key
    (record,) = read_histograms(run.info.run_id, "some_inf")
    assert (record.num, record.nonfinite) == (1, 1)


def jsonl_files(client: MlflowClient, run_id: str) -> list[str]:
    return [p for p in artifact_paths(client, run_id, "histograms/h") if p.endswith(".jsonl")]


def test_raw_chunks_are_new_files_never_rewritten(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        log_histogram("h", torch.arange(10.0), 0, image=False)
        flush()
        first = jsonl_files(client, run.info.run_id)
        content = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{first[0]}")
        log_histogram("h", torch.arange(20.0), 1, image=False)
        flush()
    chunks = jsonl_files(client, run.info.run_id)
    assert len(first) == 1 and len(chunks) == 2 and first[0] in chunks
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{first[0]}") == content
    assert [r.num for r in read_histograms(run.info.run_id, "h")] == [10, 20]


def test_writer_histograms_raw_and_numpy_bins(client: MlflowClient) -> None:
    values = np.random.default_rng(4).normal(size=1000)
    with SummaryWriter() as writer:
        writer.add_histogram("auto", values, 1, bins="auto")
        writer.add_histogram("tf", torch.tensor(values), 2)
        writer.add_histogram_raw(
            "raw", min=0.0, max=3.0, num=6, sum=9.0, sum_squares=17.0,
            bucket_limits=[1.0, 2.0, 3.0], bucket_counts=[1, 2, 3], global_step=5,
        )  # fmt: skip
    (auto,) = read_histograms(writer.run_id, "auto")
    assert auto.counts == np.histogram(values, bins="auto")[0].tolist()
    assert len(read_histograms(writer.run_id, "tf")[0].counts) == 64
    (raw,) = read_histograms(writer.run_id, "raw")
    assert (raw.edges, raw.counts, raw.step) == ([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 5)
    # mean 9 / 6, std from sum_squares 17: sqrt(17 / 6 - 1.5 ** 2)
    assert history(MlflowClient(), writer.run_id, "raw/mean") == [(5, 1.5)]
    [(_, std)] = history(MlflowClient(), writer.run_id, "raw/std")
    assert std == pytest.approx(math.sqrt(17 / 6 - 2.25))


def test_step_pictures_waiting_for_a_flush_are_bounded(client: MlflowClient) -> None:
    with mlflow.start_run() as run:
        for step in range(500):
            log_histogram("long", torch.arange(4.0) + step, step, bins=2)
        flush()
    pictured = image_steps(client, run.info.run_id, "histograms/long")
    assert 200 <= len(pictured) <= 400 and pictured[0] == 0
    assert [r.step for r in read_histograms(run.info.run_id, "long")] == list(range(500))


def test_a_constant_histogram_of_a_large_value(any_client: MlflowClient) -> None:
    # Past 2**53, v - 0.5 == v: the range must still be wider than zero at that magnitude.
    with mlflow.start_run() as run:
        log_histogram("big", torch.full((4,), 1e17), step=0, image=False)
        flush()
    [record] = read_histograms(run.info.run_id, "big")
    assert record.num == 4 and sum(record.counts) == 4
    assert record.edges[0] < 1e17 < record.edges[-1]


def test_a_huge_finite_value_does_not_lose_the_other_steps(any_client: MlflowClient) -> None:
    # float64 squares overflow past ~1e154: the record must still be valid JSON.
    with mlflow.start_run() as run:
        log_histogram("h", torch.randn(10, dtype=torch.float64), step=0, image=False)
        log_histogram("h", torch.tensor([1e200, 1.0], dtype=torch.float64), step=1, image=False)
        flush()
    run_id = run.info.run_id
    records = read_histograms(run_id, "h")
    assert [h.step for h in records] == [0, 1]
    assert records[1].num == 2 and records[1].max == 1e200 and math.isnan(records[1].sum_squares)
    assert history(any_client, run_id, "h/mean")[1] == (1, 5e199)
    [(step, std)] = history(any_client, run_id, "h/std")[1:]
    assert step == 1 and math.isnan(std)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_a_sparse_tensor_is_binned_over_its_stored_values(
    any_client: MlflowClient, layout: str
) -> None:
    dense = torch.zeros(4, 5)
    dense[0, 1], dense[2, 3], dense[3, 0] = 1.0, 2.0, -3.0
    with warnings.catch_warnings():  # torch: "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        sparse = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    with mlflow.start_run() as run, SummaryWriter() as writer:
        log_histogram("emb", sparse, step=0)
        writer.add_histogram("emb_writer", sparse, 1)
    for key in ("emb", "emb_writer"):
        [record] = read_histograms(run.info.run_id, key)
        assert (record.num, record.min, record.max, record.sum) == (3, -3.0, 2.0, 0.0)
    assert history(any_client, run.info.run_id, "emb/mean") == [(0, 0.0)]


def test_an_empty_tensor_is_refused_at_the_call(client: MlflowClient) -> None:
    with mlflow.start_run(), pytest.raises(ValueError, match="empty tensor"):
        log_histogram("nothing", torch.zeros(0, 3), step=0)


@pytest.mark.parametrize("bins", [16, 100, 1000])
def test_the_workers_cpu_binning_gives_the_device_kernels_histograms(bins: int) -> None:
    # The worker bins CPU snapshots with NumPy, chunk by chunk: the same bins, ranges and
    # counts as device_histograms, sums equal but for rounding (as between two devices).
    generator = torch.Generator().manual_seed(5)
    large = torch.randn(3 * 8192 + 17, generator=generator, dtype=torch.float64)
    large[[5, 9000, 20000]] = torch.tensor([math.nan, math.inf, -math.inf], dtype=torch.float64)
    tensors = [
        large,
        torch.arange(19.0),  # values on bin edges: 9 is on one for 1,000 bins
        torch.arange(7.0),
        torch.full((6,), 2.0),
        torch.full((2,), math.nan),
        torch.tensor([-0.0, 0.0]),
        torch.tensor([1e200, 1.0], dtype=torch.float64),  # its square overflows
        torch.tensor([-1.7e308, 0.0, 1.7e308], dtype=torch.float64),  # width past float's
        torch.tensor([0.0, 5e-311, 1e-310], dtype=torch.float64),  # bins / width overflows
        torch.randint(-5, 5, (1000,), generator=generator),
        torch.tensor([True, False, True]),
        torch.randn(40, generator=generator).to(torch.bfloat16),
    ]
    snapshot = histogram_rows(tensors, bins)
    assert isinstance(snapshot, HostSnapshot)
    host = torch.from_numpy(host_histograms(snapshot.values, snapshot.sizes, bins))
    device = device_histograms(tensors, bins)
    sums = [4, 5]  # the header's sum and sum of squares
    exact = [c for c in range(host.shape[1]) if c not in sums]
    assert torch.equal(host[:, exact], device[:, exact])
    assert torch.allclose(host[:, sums], device[:, sums], rtol=1e-12, equal_nan=True)
    assert torch.equal(snapshot.packed(), host)  # what the worker calls
    assert torch.equal(host[:, 8:].sum(dim=1), host[:, 2])  # every finite value in a bin
    for row in (7, 8):  # the extreme ranges: the low end, the middle, the high end
        assert host[row, 8:].nonzero().flatten().tolist() == [0, bins // 2, bins - 1]
    records = unpack_histograms(host, [str(i) for i in range(len(tensors))], 0, 0)
    assert all(math.isfinite(edge) for record in records for edge in record.edges)
    assert host[5, 6].item() == 0.0 and math.copysign(1.0, host[5, 6].item()) == 1.0
    edges = np.histogram(np.arange(19.0), bins)[0]
    assert host[1, 8:].tolist() == edges.astype(float).tolist()  # numpy.histogram's bins
