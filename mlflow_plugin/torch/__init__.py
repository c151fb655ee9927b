"""PyTorch helpers: TensorBoard's and W&B's vocabulary on MLflow (the ``[torch]`` extra).

>>> from mlflow_plugin.torch import SummaryWriter, autolog, watch, log_config
>>> from mlflow_plugin.torch import log_histogram, log_model_graph

Scalars are buffered and logged by a background thread (tensors are read in bulk,
never one ``.item()`` per call); ``flush()`` writes everything out, and so do
``SummaryWriter.close``, leaving ``autolog`` and interpreter exit.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    # The package is not on PyPI: the extra is installed from the source checkout.
    raise ImportError(
        "mlflow_plugin.torch needs PyTorch: in the mlflow-bucket clone, "
        "pip install -c constraints.txt '.[torch]'"
    ) from exc

from mlflow_plugin.torch.autolog import AutologRun, autolog
from mlflow_plugin.torch.config import log_config
from mlflow_plugin.torch.graph import log_model_graph
from mlflow_plugin.torch.histogram_log import log_histogram, read_histograms
from mlflow_plugin.torch.images import log_image
from mlflow_plugin.torch.watch import Watch, unwatch, watch
from mlflow_plugin.torch.worker import flush
from mlflow_plugin.torch.writer import SummaryWriter

__all__ = [
    "AutologRun",
    "SummaryWriter",
    "Watch",
    "autolog",
    "flush",
    "log_config",
    "log_histogram",
    "log_image",
    "log_model_graph",
    "read_histograms",
    "unwatch",
    "watch",
]
