"""Size and build time of ``dashboard.html`` for a long run: 10,000 steps x 20 histograms.

    .venv/bin/python benchmarks/dashboard_size.py              # about a minute on 2 cores
    .venv/bin/python benchmarks/dashboard_size.py --steps 2000 --keys 5 --rounds 1

The run's raw-bin chunks are written the way the helpers write them (100 records per
immutable JSON Lines file, ``summaries.histograms.raw_chunk``) into a fresh bucket+file
store, then the page is built as ``mlflow-bucket dashboard`` builds it. Prints the page
size against the bound the reservoir keeps (at most ``LIMITS["histogram_steps"]`` steps
per key), the build time (median of rounds) and the size of the raw data it was read from.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlflow
import numpy as np
from mlflow import MlflowClient

from mlflow_plugin.summaries.dashboard import LIMITS, collect, render
from mlflow_plugin.summaries.histograms import (
    CHUNK_RECORDS,
    HistogramStats,
    artifact_dir,
    raw_chunk,
)


def _record(key: str, step: int, rng: np.random.Generator, bins: int) -> HistogramStats:
    values = rng.normal(step / 1000, 1.0, 4096)
    counts, edges = np.histogram(values, bins=bins)
    return HistogramStats(
        key, step, 1_700_000_000_000 + step, edges.tolist(), counts.astype(float).tolist(),
        len(values), 0, float(values.min()), float(values.max()), float(values.sum()),
        float((values**2).sum()),
    )  # fmt: skip


def fill(client: MlflowClient, run_id: str, steps: int, keys: int, bins: int) -> int:
    """Write ``keys`` histograms of ``steps`` steps as raw chunks; return the bytes stored."""
    rng = np.random.default_rng(0)
    stored = 0
    for k in range(keys):
        key = f"layer{k}/weight"
        for start in range(0, steps, CHUNK_RECORDS):
            chunk = [
                _record(key, s, rng, bins) for s in range(start, min(steps, start + CHUNK_RECORDS))
            ]
            name, text = raw_chunk(chunk)
            client.log_text(run_id, text, f"{artifact_dir(key)}/{name}")
            stored += len(text)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--bins", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        uri = f"bucket+file://{scratch}/store"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("dashboard-size")).info.run_id
        started = time.perf_counter()
        raw = fill(client, run_id, args.steps, args.keys, args.bins)
        print(f"wrote {args.keys} keys x {args.steps} steps ({args.bins} bins) of raw chunks: "
              f"{raw / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s")  # fmt: skip
        times, size = [], 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            page = render(collect(client, run_id))
            times.append(time.perf_counter() - started)
            size = len(page.encode())
    kept = min(args.steps, LIMITS["histogram_steps"])
    print()
    print("| run | steps kept per key | page size | page / raw data | build time (median) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {args.steps:,} steps x {args.keys} histograms | {kept} (bound "
          f"{LIMITS['histogram_steps']}) | {size / 2**20:.2f} MiB | {size / raw:.3f} | "
          f"{statistics.median(times):.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
