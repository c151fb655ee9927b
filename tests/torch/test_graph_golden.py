"""``record_graph`` on a small fixed model against committed drawings (tests/torch/golden/).

The model has a skip connection, a torch function called between modules and a frozen
layer, so the golden files pin the edges, the function node, the trainable count and
the three drawings ``log_model_graph`` stores. Regenerate after an intended change
with ``MLFLOW_BUCKET_UPDATE_GOLDEN=1`` (``tests/summaries/golden.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mlflow_plugin.summaries.graphs import render_summary, render_svg, render_text
from mlflow_plugin.torch.graph import record_graph
from tests.summaries.golden import expected_text

GOLDEN = Path(__file__).parent / "golden"


class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.block = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 8 * 8, 10)
        self.stem.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = y + self.block(y)  # the skip connection
        return self.head(torch.flatten(y, 1))


def test_recorded_graph_drawings_match_golden() -> None:
    graph = record_graph(_Residual(), torch.zeros(2, 1, 8, 8))
    for name, actual in (
        ("residual_graph.txt", render_text(graph)),
        ("residual_summary.txt", render_summary(graph)),
        ("residual_graph.svg", render_svg(graph)),
    ):
        assert actual == expected_text(GOLDEN / name, actual), name
