"""Does logging make the training loop wait for the GPU? The demo loop under CUDA's sync check.

    .venv/bin/python benchmarks/torch_sync_check.py [--steps 300]

Runs the overhead benchmark's demo loop on CUDA twice, under
``torch.cuda.set_sync_debug_mode("error")`` (any host-device synchronisation raises):
bare, then with the helpers on as the overhead benchmark uses them
(``autolog(..., watch="all")``, 10 scalars per step, 2 histograms every 100 steps).
The first step of each loop runs before the check: it records the model graph, a
one-time host read. The background thread's copies (the scalars and bins it reads
back, off the training thread) are held back during the checked steps and run at the
final flush, after the check, so every synchronisation the check sees is the
training thread's. Prints the result per loop and exits 1 if any checked step
synchronised; on a machine without CUDA it says so and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import mlflow
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_overhead import HISTOGRAM_EVERY, SCALARS, make_model, make_step


def checked_loop(steps: int, folder: str | None) -> str | None:
    """The error text of the first synchronising step, or None; ``folder``: helpers on."""
    from mlflow_plugin.torch import autolog, flush, log_histogram
    from mlflow_plugin.torch.worker import get_worker

    torch.manual_seed(0)
    model = make_model("demo").cuda()
    optimizer = torch.optim.Adam(model.parameters())
    step = make_step(model, optimizer, device="cuda")
    weight = model.classifier[1].weight
    for _ in range(5):
        step()
    if folder is None:
        return _checked(lambda n: step(), steps)
    mlflow.set_tracking_uri(f"bucket+file://{folder}")
    worker = get_worker()
    with autolog(model, optimizer, log_model=False, watch="all", log_freq=HISTOGRAM_EVERY) as run:
        step()  # the first forward pass records the graph: a host read, once

        def logged_step(n: int) -> None:
            loss = step()
            run.log({f"metric/{i}": loss for i in range(SCALARS)})
            if n % HISTOGRAM_EVERY == 0:
                log_histogram("weight", weight, n, bins=64)
                log_histogram("grad", weight.grad, n, bins=64)

        with worker._drain_lock:  # the background copies wait for the final flush
            error = _checked(logged_step, steps)
    flush()
    return error


def _checked(step: Callable[[int], object], steps: int) -> str | None:
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for n in range(steps):
            step(n)
    except RuntimeError:
        return f"step {n}:\n{traceback.format_exc(limit=12)}"
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "torch_sync_check: no CUDA device here (torch "
            f"{torch.__version__}); run it on a machine with an NVIDIA GPU",
            file=sys.stderr,
        )
        sys.exit(2)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"demo CNN, batch 32, {args.steps} steps under set_sync_debug_mode('error')\n")
    print("| loop | host syncs in the checked steps |")
    print("| --- | --- |")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for label, folder in (("bare", None), ("helpers on (autolog + watch + log)", tmp)):
            error = checked_loop(args.steps, folder)
            print(f"| {label} | {'none' if error is None else 'YES'} |")
            if error is not None:
                failed = True
                print(error, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
