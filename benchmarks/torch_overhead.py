"""Per-step cost of logging a small training loop: mlflow_plugin.torch vs TensorBoard vs none.

    .venv/bin/python benchmarks/torch_overhead.py [--steps 1000] [--rounds 9] [--profile]

Two models, batch 32 of 8x8 inputs, CPU, one intra-op thread (as in the demo):

- demo:  the demo's digits CNN (channels 16, 32; hidden 64)
- small: the same CNN at half width (channels 8, 16; hidden 32): steps of a few ms,
         where per-step costs show most

Each logging mode does the same work per step: 10 scalars (the loss tensor, as a
training loop has it) and, every 100 steps, histograms of two tensors (a weight and
its gradient) plus W&B's ``watch(model, log="all", log_freq=100)``: a histogram of
every parameter and of every gradient:

- ours:        autolog(model, optimizer, watch="all") (grad norm, lr, steps/s, graph,
               watch) + run.log of 10 scalars + log_histogram x2 every 100 steps, to a
               bucket+file: store
- tensorboard: torch.utils.tensorboard.SummaryWriter: add_scalar x10 + add_histogram x2,
               and add_histogram of each parameter and gradient, every 100 steps
- none:        the bare loop

Modes run interleaved, ``--rounds`` times, each round in the next of the six orders;
the overhead is the median over rounds of each round's time against that round's bare
loop, with the middle half of the rounds' overheads beside it (the spread on a shared
machine), and the same with the work still queued when the loop ends (the last
drain's points and histograms and their upload, or TensorBoard's pending events) done
and added: an upper bound, since that work no longer overlaps the loop. A
second table times one scalar call in isolation (float and tensor values), each loop
after a full collection (``gc.collect()``). The final flush / close is timed
separately: it runs once per run, not per step. ``--profile`` prints where
the training thread spends its time in ours (cProfile, small model) instead.

Last, the background thread's CPU per metric point: the drain alone (tensor values to
floats, the tracking store's validation and buffering), timed with ``time.thread_time``
on the draining thread, so other processes' load does not count. ``--drain-only``
prints just that line.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import itertools
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


# name -> (conv channels, hidden units) of the demo's DigitsCNN
MODELS: dict[str, tuple[list[int], int]] = {"demo": ([16, 32], 64), "small": ([8, 16], 32)}


def make_model(case: str) -> nn.Module:
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    channels, hidden = MODELS[case]
    model: nn.Module = demo.DigitsCNN(channels, hidden, 0.2)
    return model


def make_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, device: str = "cpu"
) -> Callable[[], torch.Tensor]:
    x = torch.rand(BATCH, 1, 8, 8, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


# Each runner returns seconds: (the loop, the work it queued and left pending, closing).
Timings = tuple[float, float, float]


def run_none(case: str, steps: int) -> Timings:
    torch.manual_seed(0)
    model = make_model(case)
    step = make_step(model, torch.optim.Adam(model.parameters()))
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start, 0.0, 0.0


def run_tensorboard(case: str, steps: int, folder: str) -> Timings:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = make_model(case)
    named = list(model.named_parameters())
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
            for name, param in named:  # what watch(log="all") logs
                writer.add_histogram(f"parameters/{name}", param, n, bins=64)
                writer.add_histogram(f"gradients/{name}", param.grad, n, bins=64)
    loop = time.perf_counter() - start
    writer.flush()  # the events its writer thread has not written yet
    queued = time.perf_counter() - start - loop
    writer.close()
    return loop, queued, time.perf_counter() - start - loop - queued


def run_ours(case: str, steps: int, folder: str) -> Timings:
    from mlflow.tracking import MlflowClient

    from mlflow_plugin.torch import autolog, log_histogram
    from mlflow_plugin.torch.worker import get_worker

    torch.manual_seed(0)
    mlflow.set_tracking_uri(f"bucket+file://{folder}")
    model = make_model(case)
    optimizer = torch.optim.Adam(model.parameters())
    step = make_step(model, optimizer)
    weight = model.classifier[1].weight
    for _ in range(20):
        step()
    with autolog(model, optimizer, log_model=False, watch="all", log_freq=HISTOGRAM_EVERY) as run:
        step()  # the first forward pass records the graph: a one-time cost, not per step
        start = time.perf_counter()
        for n in range(steps):
            loss = step()
            run.log({f"metric/{i}": loss for i in range(SCALARS)})
            if n % HISTOGRAM_EVERY == 0:
                log_histogram("weight", weight, n, bins=64)
                log_histogram("grad", weight.grad, n, bins=64)
        loop = time.perf_counter() - start
        worker = get_worker()
        with worker._drain_lock:  # what the loop queued since the last drain: points, bins
            worker._drain()
        MlflowClient()._tracking_client.store.flush_async_logging()  # and their upload
        queued = time.perf_counter() - start - loop
    return loop, queued, time.perf_counter() - start - loop - queued


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
            # Each timed loop starts from the same collector state: the points pending
            # from 10,000 calls would otherwise start a full collection of the whole
            # heap (~0.2 s) in whichever loop crosses the threshold first.
            gc.collect()
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


def loop_table(steps: int, rounds: int, tmp: str) -> None:
    """Both models, the three modes interleaved per round; medians."""
    runners: dict[str, Callable[[str, str], Timings]] = {
        "none": lambda case, folder: run_none(case, steps),
        "tensorboard": lambda case, folder: run_tensorboard(case, steps, folder),
        "ours": lambda case, folder: run_ours(case, steps, folder),
    }
    labels = {
        "none": "no logging",
        "tensorboard": "TensorBoard SummaryWriter",
        "ours": "mlflow_plugin.torch (autolog + watch + log)",
    }
    print(
        f"loop: batch {BATCH} of 8x8, {steps} steps x {rounds} rounds; "
        f"{SCALARS} scalars/step, 2 histograms + watch(log='all') every {HISTOGRAM_EVERY} "
        "steps\n"
    )
    print(
        "| model | mode | ms/step (median) | logging overhead (median of rounds) "
        "| middle half of rounds | incl. the queued work | final flush/close (s) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    # Every order of the modes in turn: none always runs first, or right after another.
    orders = list(itertools.permutations(runners))
    for case in MODELS:
        times: dict[str, list[float]] = {mode: [] for mode in runners}
        with_queued: dict[str, list[float]] = {mode: [] for mode in runners}
        closing: dict[str, list[float]] = {mode: [] for mode in runners}
        for r in range(rounds):
            for mode in orders[r % len(orders)]:
                gc.collect()  # each mode starts from the same collector state
                loop, queued, close = runners[mode](case, f"{tmp}/{case}-{mode}-{r}")
                times[mode].append(loop / steps * 1e3)
                with_queued[mode].append((loop + queued) / steps * 1e3)
                closing[mode].append(close)
        for mode, label in labels.items():
            # Each round against the same round's bare loop: the machine's drift between
            # rounds (other jobs on a shared machine) cancels out of the ratio.
            overheads = _overheads(times[mode], times["none"])
            quarter = len(overheads) // 4
            low, high = overheads[quarter], overheads[len(overheads) - 1 - quarter]
            # The work still queued when the loop ends (a drain happens every 2 s), done
            # after it and added: an upper bound, as it no longer overlaps the loop.
            queued = statistics.median(_overheads(with_queued[mode], times["none"]))
            print(
                f"| {case} | {label} | {statistics.median(times[mode]):.3f} "
                f"| {statistics.median(overheads):+.1f}% | {low:+.1f}% to {high:+.1f}% "
                f"| {queued:+.1f}% | {statistics.median(closing[mode]):.2f} |"
            )


def _overheads(times: list[float], bare: list[float]) -> list[float]:
    """Each round's overhead in percent against the same round's bare loop, sorted."""
    return sorted(100 * (ms - b) / b for ms, b in zip(times, bare, strict=True))


def call_table(calls: int, tmp: str) -> None:
    results = per_call(calls, f"{tmp}/calls")
    print(f"\nper add_scalar call ({calls} calls; 'incl. flush' adds the write-out):\n")
    print(
        "| value | ours (µs) | TensorBoard (µs) | ours / TensorBoard "
        "| ours incl. flush (µs) | TensorBoard incl. flush (µs) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label in ("float", "tensor"):
        ours, board = results[f"ours/{label}"], results[f"tensorboard/{label}"]
        ours_total = results[f"ours/{label}/total"]
        board_total = results[f"tensorboard/{label}/total"]
        print(
            f"| {label} | {ours:.2f} | {board:.2f} | {ours / board:.3f}x "
            f"| {ours_total:.2f} | {board_total:.2f} |"
        )


def drain_cost(steps: int, steps_per_drain: int, folder: str) -> float:
    """Microseconds of the draining thread's CPU per metric point (median of 3 passes).

    Points of a mix like the loop's: per step 10 scalars (a detached loss tensor each),
    a gradient norm (a tensor; autolog samples it) and a learning rate (a float), drained every
    ``steps_per_drain`` steps into a bucket+file: run. Python's cyclic garbage collector
    is off during a pass: a full collection (~0.1 s here) lands on whichever drain
    happens to allocate past its threshold and would make the figure a lottery.
    """
    from mlflow.tracking import MlflowClient

    from mlflow_plugin.torch.scalars import RunTarget, ScalarBuffer

    uri = f"bucket+file://{folder}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("drain")).info.run_id
    target, buffer = RunTarget(run_id, uri), ScalarBuffer(lambda _: client)
    loss = torch.tensor(0.5, requires_grad=True) * 2
    norm = torch.tensor(1.5)
    keys = [f"metric/{i}" for i in range(SCALARS)]
    passes = []
    for _ in range(3):
        cpu, points = 0.0, 0
        gc.collect()
        gc.disable()
        for first in range(0, steps, steps_per_drain):
            for n in range(first, first + steps_per_drain):
                stamp = 1_700_000_000_000 + n
                for key in keys:
                    buffer.append(target, key, loss, n, stamp)
                buffer.append(target, "train/grad_norm", norm, n, stamp)
                buffer.append(target, "train/lr", 0.001, n, stamp)
                points += SCALARS + 2
            start = time.thread_time()
            errors = buffer.drain()
            cpu += time.thread_time() - start
            assert not errors, errors
        gc.enable()
        passes.append(cpu / points * 1e6)
    client.set_terminated(run_id)
    return statistics.median(passes)


def drain_line(steps: int, tmp: str) -> None:
    sizes = (1, 100)  # a slow step per drain (12 points), and a fast loop's 2-second drain
    costs = [drain_cost(steps, size, f"{tmp}/drain-{size}") for size in sizes]
    shown = ", ".join(
        f"{cost:.2f} µs (drains of {size * (SCALARS + 2):,} points)"
        for size, cost in zip(sizes, costs, strict=True)
    )
    print(f"\nbackground CPU per metric point: {shown}; cyclic GC left out")


def profile(steps: int, tmp: str) -> None:
    """cProfile of ours on the small model: the training thread's top functions."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run_ours("small", steps, f"{tmp}/profile")
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--drain-only", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    # As the demo: a model this small only loses time to intra-op thread hand-offs, and
    # the second core is left to the logging threads (ours and TensorBoard's alike).
    torch.set_num_threads(1)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            profile(args.steps, tmp)
            return
        print(f"machine: {machine()}")
        if not args.drain_only:
            loop_table(args.steps, args.rounds, tmp)
            call_table(args.calls, tmp)
        drain_line(max(args.steps, 1000), tmp)


if __name__ == "__main__":
    main()
