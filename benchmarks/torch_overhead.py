"""Per-step cost of logging a small training loop: mlflow_plugin.torch vs TensorBoard vs none.

    .venv/bin/python benchmarks/torch_overhead.py [--steps 2000] [--rounds 3]

The model is the demo's digits CNN (batch 32, CPU, one intra-op thread as in the demo).
Each logging mode does the same
work per step: 10 scalars (the loss tensor, as a training loop has it) and, every
100 steps, histograms of two tensors (a weight and its gradient):

- ours:        autolog(model, optimizer) (grad norm, lr, steps/s, graph) + run.log of
               10 scalars + log_histogram x2 every 100 steps, to a bucket+file: store
- tensorboard: torch.utils.tensorboard.SummaryWriter: add_scalar x10 + add_histogram x2
- none:        the bare loop

Modes run interleaved, ``--rounds`` times; the table shows medians. A second table
times one scalar call in isolation (float and tensor values). The final flush / close
is timed separately: it runs once per run, not per step.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import torch
from torch import nn

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
BATCH = 32
SCALARS = 10
HISTOGRAM_EVERY = 100


def demo_model() -> nn.Module:
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    model: nn.Module = demo.DigitsCNN([16, 32], 64, 0.2)
    return model


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], torch.Tensor]:
    x = torch.rand(BATCH, 1, 8, 8)
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def run_none(steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = demo_model()
    step = make_step(model, torch.optim.Adam(model.parameters()))
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start, 0.0


def run_tensorboard(steps: int, folder: str) -> tuple[float, float]:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = demo_model()
    step = make_step(model, torch.optim.Adam(model.parameters()))
    weight = model.classifier[1].weight
    for _ in range(20):
        step()
    writer = SummaryWriter(folder)
    start = time.perf_counter()
    for n in range(steps):
        loss = step()
        for i in range(SCALARS):
            writer.add_scalar(f"metric/{i}", loss, n)
        if n % HISTOGRAM_EVERY == 0:
            writer.add_histogram("weight", weight, n, bins=64)
            writer.add_histogram("grad", weight.grad, n, bins=64)
    loop = time.perf_counter() - start
    writer.close()
    return loop, time.perf_counter() - start - loop


def run_ours(steps: int, folder: str) -> tuple[float, float]:
    from mlflow_plugin.torch import autolog, log_histogram

    torch.manual_seed(0)
    mlflow.set_tracking_uri(f"bucket+file://{folder}")
    model = demo_model()
    optimizer = torch.optim.Adam(model.parameters())
    step = make_step(model, optimizer)
    weight = model.classifier[1].weight
    for _ in range(20):
        step()
    with autolog(model, optimizer, log_model=False) as run:
        step()  # the first forward pass records the graph: a one-time cost, not per step
        start = time.perf_counter()
        for n in range(steps):
            loss = step()
            run.log({f"metric/{i}": loss for i in range(SCALARS)})
            if n % HISTOGRAM_EVERY == 0:
                log_histogram("weight", weight, n, bins=64)
                log_histogram("grad", weight.grad, n, bins=64)
        loop = time.perf_counter() - start
    return loop, time.perf_counter() - start - loop


def per_call(calls: int, folder: str) -> dict[str, float]:
    """Microseconds per add_scalar call, ours vs TensorBoard's, float and tensor values."""
    from torch.utils.tensorboard import SummaryWriter as TensorBoardWriter

    from mlflow_plugin.torch import SummaryWriter

    mlflow.set_tracking_uri(f"bucket+file://{folder}/mlflow")
    value = torch.tensor(0.5)
    results: dict[str, float] = {}
    for name, make in (
        ("ours", lambda: SummaryWriter()),
        ("tensorboard", lambda: TensorBoardWriter(f"{folder}/tb")),
    ):
        writer: Any = make()
        for label, v in (("float", 0.5), ("tensor", value)):
            writer.flush()
            start = time.perf_counter()
            for n in range(calls):
                writer.add_scalar("x", v, n)
            called = time.perf_counter()
            writer.flush()  # the background work those calls caused, paid once per batch
            results[f"{name}/{label}"] = (called - start) / calls * 1e6
            results[f"{name}/{label}/total"] = (time.perf_counter() - start) / calls * 1e6
        writer.close()
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    # As the demo: a model this small only loses time to intra-op thread hand-offs, and
    # the second core is left to the logging threads (ours and TensorBoard's alike).
    torch.set_num_threads(1)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    times: dict[str, list[float]] = {"none": [], "tensorboard": [], "ours": []}
    closing: dict[str, list[float]] = {"none": [], "tensorboard": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in times:
                folder = f"{tmp}/{mode}-{r}"
                if mode == "none":
                    loop, close = run_none(args.steps)
                elif mode == "tensorboard":
                    loop, close = run_tensorboard(args.steps, folder)
                else:
                    loop, close = run_ours(args.steps, folder)
                times[mode].append(loop / args.steps * 1e3)
                closing[mode].append(close)
        calls = per_call(args.calls, f"{tmp}/calls")
    none = statistics.median(times["none"])
    print(f"machine: {machine()}")
    print(
        f"loop: demo CNN, batch {BATCH}, {args.steps} steps x {args.rounds} rounds (median); "
        f"{SCALARS} scalars/step, 2 histograms every {HISTOGRAM_EVERY} steps\n"
    )
    print("| mode | ms/step | vs no logging | logging overhead | final flush/close (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode, label in (
        ("none", "no logging"),
        ("tensorboard", "TensorBoard SummaryWriter"),
        ("ours", "mlflow_plugin.torch (autolog + log)"),
    ):
        ms = statistics.median(times[mode])
        print(
            f"| {label} | {ms:.3f} | {ms / none:.3f}x | {100 * (ms - none) / none:+.1f}% "
            f"| {statistics.median(closing[mode]):.2f} |"
        )
    print(f"\nper add_scalar call ({args.calls} calls; 'incl. flush' adds the write-out):\n")
    print(
        "| value | ours (µs) | TensorBoard (µs) | ours / TensorBoard "
        "| ours incl. flush (µs) | TensorBoard incl. flush (µs) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label in ("float", "tensor"):
        ours, board = calls[f"ours/{label}"], calls[f"tensorboard/{label}"]
        ours_total, board_total = calls[f"ours/{label}/total"], calls[f"tensorboard/{label}/total"]
        print(
            f"| {label} | {ours:.2f} | {board:.2f} | {ours / board:.3f}x "
            f"| {ours_total:.2f} | {board_total:.2f} |"
        )


if __name__ == "__main__":
    main()
