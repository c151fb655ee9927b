"""The demo: train a small CNN on scikit-learn's digits and track everything in a bucket.

    python examples/demo.py                       # writes ./mlruns-bucket
    MLFLOW_TRACKING_URI='bucket+s3://my-bucket/team?endpoint_url=http://localhost:9000' \\
        python examples/demo.py

It trains on CPU for a few epochs (no download: the 8x8 digits ship with scikit-learn)
with ``mlflow_plugin.torch.autolog`` (config, model graph, learning rate, gradient norm,
steps/s, gradient and parameter histograms, the final model) plus, through the
TensorBoard-style ``SummaryWriter``, misclassified digits per epoch and a confusion
matrix. It ends by printing the ``mlflow ui`` command that browses the run.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import torch
from matplotlib.figure import Figure
from mlflow import MlflowClient
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix
from torch import nn

from mlflow_plugin.torch import SummaryWriter, autolog, flush

DEFAULT_URI = "bucket+file:./mlruns-bucket"
CONFIG = {
    "data": {"dataset": "sklearn-digits", "test_fraction": 0.2, "seed": 0},
    "model": {"channels": [16, 32], "hidden": 64, "dropout": 0.2},
    "optimizer": {"name": "adam", "lr": 3e-3, "weight_decay": 1e-4},
    "schedule": {"name": "step", "step_size": 3, "gamma": 0.5},
    "train": {"epochs": 8, "batch_size": 32},
}


class DigitsCNN(nn.Module):
    """Two conv layers, a pooling step and a small classifier head: 8x8 in, 10 logits out."""

    def __init__(self, channels: list[int], hidden: int, dropout: float) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[1] * 4 * 4, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def load_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(len(labels) * (1 - CONFIG["data"]["test_fraction"]))
    return images[order[:cut]], labels[order[:cut]], images[order[cut:]], labels[order[cut:]]


def progress(epoch: int, epochs: int, done: int, total: int, loss: float) -> None:
    width = 30
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    sys.stdout.write(f"\repoch {epoch + 1}/{epochs} [{bar}] {done}/{total} loss {loss:.3f}")
    sys.stdout.flush()


def confusion_figure(truth: np.ndarray, predicted: np.ndarray) -> Figure:
    matrix = confusion_matrix(truth, predicted, labels=list(range(10)))
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=color, fontsize=8)
    axes.set(xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10))
    axes.set_title("confusion matrix (test)")
    figure.tight_layout()
    return figure


def train() -> str:
    torch.manual_seed(0)
    # A network this small only loses time to intra-op thread hand-offs; one thread also
    # leaves a core to the logging thread.
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = load_data()
    model = DigitsCNN(**CONFIG["model"])
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=CONFIG["optimizer"]["lr"],
        weight_decay=CONFIG["optimizer"]["weight_decay"],
    )
    schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, CONFIG["schedule"]["step_size"], CONFIG["schedule"]["gamma"]
    )
    loss_fn = nn.CrossEntropyLoss()
    epochs, batch = CONFIG["train"]["epochs"], CONFIG["train"]["batch_size"]
    batches = (len(y_train) + batch - 1) // batch

    mlflow.set_experiment("digits-demo")
    with (
        autolog(model, optimizer, CONFIG, run_name="digits-cnn", watch="all", log_freq=25) as run,
        SummaryWriter() as writer,  # joins the autolog run
    ):
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(y_train))
            for i in range(batches):
                index = order[i * batch : (i + 1) * batch]
                optimizer.zero_grad()
                logits = model(x_train[index])
                loss = loss_fn(logits, y_train[index])
                loss.backward()
                optimizer.step()
                accuracy = (logits.argmax(1) == y_train[index]).float().mean()
                run.log({"train/loss": loss, "train/accuracy": accuracy})  # tensors: no sync
                if i % 10 == 0 or i == batches - 1:
                    progress(epoch, epochs, i + 1, batches, loss.item())
            schedule.step()

            model.eval()
            with torch.no_grad():
                logits = model(x_test)
            predicted = logits.argmax(1)
            test_loss = loss_fn(logits, y_test).item()
            test_accuracy = (predicted == y_test).float().mean().item()
            run.log({"test/loss": test_loss, "test/accuracy": test_accuracy, "epoch": epoch})
            writer.add_histogram("test/logits", logits, run.step)
            wrong = (predicted != y_test).nonzero().flatten()[:32]
            if len(wrong):
                # 8x8 digits are tiny: upscale 4x so the UI shows them legibly.
                big = x_test[wrong].repeat_interleave(4, 2).repeat_interleave(4, 3)
                writer.add_images("test/misclassified", big, epoch)
            print(f"  test accuracy {test_accuracy:.3f}, {len(wrong)} misclassified logged")
        figure = confusion_figure(y_test.numpy(), predicted.numpy())
        writer.add_figure("test/confusion_matrix", figure, epochs - 1)
        writer.add_text("notes", f"final test accuracy: {test_accuracy:.4f}", epochs - 1)
    flush()
    return run.run_id


def summary(run_id: str) -> None:
    client = MlflowClient()
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "train/loss")
    folders = sorted(f.path for f in client.list_artifacts(run_id))
    print(f"run {run.info.run_name} ({run_id}): {run.info.status}")
    print(
        f"  params:    {len(run.data.params)} (e.g. optimizer.lr={run.data.params['optimizer.lr']})"
    )
    print(f"  metrics:   {len(run.data.metrics)} keys; train/loss has {len(history)} points")
    print(f"  test acc:  {run.data.metrics['test/accuracy']:.3f}")
    print(f"  artifacts: {', '.join(folders)}")


def main() -> None:
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    mlflow.set_tracking_uri(uri)
    print(f"tracking to {uri}")
    started = time.perf_counter()
    run_id = train()
    print(f"trained and logged in {time.perf_counter() - started:.1f} s")
    summary(run_id)
    print("\nBrowse it with:")
    print(f"  {mlflow_command()} ui --backend-store-uri '{uri}'")


def mlflow_command() -> str:
    """The ``mlflow`` script beside this interpreter, as a fresh shell here can run it.

    A bare ``mlflow`` is not on PATH unless the virtual environment is activated; after
    ``make demo`` this is ``.venv/bin/mlflow``.
    """
    script = Path(sys.executable).parent / "mlflow"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m mlflow"
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


if __name__ == "__main__":
    main()
