"""The pure builders of ``mlflow_plugin.summaries`` against committed expected outputs.

Fixed inputs, outputs compared with the files in ``tests/summaries/golden/``:

- histograms: the record's JSON, TensorBoard's percentile bands (exact bucket hits and
  empty buckets included), re-binning of TensorBoard's uneven buckets, a raw-bin chunk;
- pictures drawn with PIL (a histogram step, a tiled image batch): PNG files whose
  decoded pixels must be equal, pixel for pixel (PIL draws deterministically);
- pictures drawn with matplotlib (the histogram overview, a PR curve): PNG files
  compared with a tolerance of a few pixels (``close_pictures``), since anti-aliased
  edges may move between FreeType or matplotlib builds;
- text builders: the model-graph text, layer table and SVG, PR-curve JSON, PLY and
  Embedding Projector TSV files, byte for byte.

Regenerate after an intended change: ``MLFLOW_BUCKET_UPDATE_GOLDEN=1`` (see
``tests/summaries/golden.py``), then review ``git diff`` of the golden folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlflow_plugin.summaries.graphs import (
    GraphNode,
    ModelGraph,
    render_summary,
    render_svg,
    render_text,
)
from mlflow_plugin.summaries.histograms import (
    HistogramStats,
    percentiles,
    raw_chunk,
    rebin,
    render_overview,
    render_step,
    stats_from_json,
)
from mlflow_plugin.summaries.images import figure_to_array, to_hwc_uint8
from mlflow_plugin.summaries.records import embedding_files, ply_text, pr_curve, render_pr_curve
from tests.summaries.golden import close_pictures, expected_pixels, expected_text

GOLDEN = Path(__file__).parent / "golden"


def _stats(step: int = 7) -> HistogramStats:
    """Eight equal bins over [-2, 2] with empty ones inside, so bands hit bucket ends."""
    return HistogramStats(
        key="weights/fc1", step=step, timestamp=1_700_000_000_000 + step,
        edges=np.linspace(-2.0, 2.0, 9).tolist(),
        counts=[0.0, 3.0, 10.0, 0.0, 8.0, 4.0, 0.0, 1.0],  # p50 hits 13 exactly
        num=26, nonfinite=2, min=-1.7, max=1.9, sum=6.25, sum_squares=48.5,
    )  # fmt: skip


def _tensorboard_buckets() -> HistogramStats:
    """TensorBoard's exponential buckets as the importer reads them: uneven, one of zero width."""
    return HistogramStats(
        key="tb", step=3, timestamp=0,
        edges=[-0.9, -0.5, -0.1, -0.1, 0.05, 0.4, 1.3],
        counts=[4.0, 6.0, 0.0, 20.0, 9.0, 1.0],
        num=40, nonfinite=0, min=-0.9, max=1.3, sum=1.0, sum_squares=7.0,
    )  # fmt: skip


def _json(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


def test_histogram_record_bands_rebinning_and_chunk() -> None:
    stats = _stats()
    name, text = raw_chunk([_stats(5), stats])
    actual = {
        "record": json.loads(stats.to_json()),
        "percentiles": percentiles(stats),
        "percentiles_tensorboard_buckets": percentiles(_tensorboard_buckets()),
        "rebinned_8": vars(rebin(_tensorboard_buckets(), 8)),
        "rebinned_constant": vars(rebin(HistogramStats("c", 0, 0, [1.0, 1.0], [5.0], 5, 0,
                                                         1.0, 1.0, 5.0, 5.0), 4)),
        "chunk_name_prefix": name.rsplit("-", 1)[0],
        "chunk_lines": text.splitlines(),
    }  # fmt: skip
    expected = json.loads(expected_text(GOLDEN / "histogram.json", _json(actual)))
    assert actual == expected
    assert [stats_from_json(line) for line in text.splitlines()] == [_stats(5), stats]


def test_histogram_step_picture_is_pixel_exact() -> None:
    actual = np.asarray(render_step(_stats()))
    assert np.array_equal(actual, expected_pixels(GOLDEN / "histogram_step.png", actual))


def test_histogram_overview_picture() -> None:
    history = [_stats(step) for step in range(0, 60, 10)]
    for rank, stats in enumerate(history):
        stats.counts = np.roll(stats.counts, rank).tolist()  # the distribution moves right
    actual = figure_to_array(render_overview(history), close=False)
    assert close_pictures(actual, expected_pixels(GOLDEN / "histogram_overview.png", actual))


def test_image_batch_tiles_eight_to_a_row() -> None:
    batch = np.linspace(0.0, 1.0, 10 * 3 * 4 * 5).reshape(10, 3, 4, 5)  # NCHW floats
    actual = to_hwc_uint8(batch, "NCHW")
    assert np.array_equal(actual, expected_pixels(GOLDEN / "image_grid.png", actual))


def _graph() -> ModelGraph:
    """A residual block as ``record_graph`` records it: a skip connection joins at ``add``."""
    nodes = [
        GraphNode(0, "input", "input", "input", "[1, 4]"),
        GraphNode(1, "module", "fc1", "Linear", "[1, 8]", [0], 40),
        GraphNode(2, "module", "act", "ReLU", "[1, 8]", [1]),
        GraphNode(3, "module", "fc2", "Linear", "[1, 4]", [2], 36),
        GraphNode(4, "function", "add", "add", "[1, 4]", [3, 0]),
        GraphNode(5, "output", "output", "output", "[1, 4]", [4]),
    ]
    return ModelGraph("Residual", nodes, 76, 40, "Recorded from one forward pass.")


def test_graph_text_layer_table_and_svg() -> None:
    graph = _graph()
    for name, actual in (
        ("graph.txt", render_text(graph)),
        ("summary.txt", render_summary(graph)),
        ("graph.svg", render_svg(graph)),
    ):
        assert actual == expected_text(GOLDEN / name, actual), name


def test_pr_curve_ply_and_embedding_files() -> None:
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    predictions = np.array([0.9, 0.1, 0.65, 0.4, 0.55, 0.3, 0.8, 0.05])
    curve = pr_curve(labels, predictions, num_thresholds=6)
    assert _json(curve) == expected_text(GOLDEN / "pr_curve.json", _json(curve))
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.5, 0.25]])
    ply = ply_text(vertices, np.array([[0, 1, 2]]), np.array([[255, 0, 0]] * 3, dtype=np.uint8))
    assert ply == expected_text(GOLDEN / "mesh.ply", ply)
    files = embedding_files(vertices, ["a", "b", "c"], None)
    assert files["tensors.tsv"] == expected_text(GOLDEN / "tensors.tsv", files["tensors.tsv"])
    assert files["metadata.tsv"] == expected_text(GOLDEN / "metadata.tsv", files["metadata.tsv"])


def test_pr_curve_picture() -> None:
    curve = pr_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.6, 0.4, 0.2]), num_thresholds=5)
    actual = figure_to_array(render_pr_curve(curve, "pr (step 3)"), close=False)
    assert close_pictures(actual, expected_pixels(GOLDEN / "pr_curve.png", actual))
