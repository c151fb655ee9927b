"""Committed expected outputs of the pure builders (tensorboardX's golden files).

``expected_text`` and ``expected_pixels`` return what a builder produced when its golden
file was last written; the test compares. With ``MLFLOW_BUCKET_UPDATE_GOLDEN=1`` in the
environment they first (re)write the file from the actual output, so regenerating after an
intended change is::

    MLFLOW_BUCKET_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -p no:cacheprovider \
        tests/summaries tests/torch/test_graph_golden.py
    git diff tests/summaries/golden tests/torch/golden   # review, then commit

A missing golden file is a failure unless updating, so a new builder cannot pass unchecked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

UPDATE_ENV = "MLFLOW_BUCKET_UPDATE_GOLDEN"


def updating() -> bool:
    return os.environ.get(UPDATE_ENV) == "1"


def expected_text(path: Path, actual: str) -> str:
    """The committed text of ``path`` (rewritten from ``actual`` when updating)."""
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
    assert path.is_file(), f"no golden file {path}: run with {UPDATE_ENV}=1 to write it"
    return path.read_text(encoding="utf-8")


def expected_pixels(path: Path, actual: np.ndarray) -> np.ndarray:
    """The committed picture ``path`` (a PNG) as an HWC uint8 array.

    PNG is lossless, so the decoded array is exactly the pixels that were written.
    """
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(actual).save(path, optimize=True)
    assert path.is_file(), f"no golden file {path}: run with {UPDATE_ENV}=1 to write it"
    with Image.open(path) as picture:
        return np.asarray(picture)


def close_pictures(actual: np.ndarray, expected: np.ndarray, max_pixels: int = 10) -> bool:
    """For matplotlib output: same size, at most ``max_pixels`` pixels off by more than 16.

    Agg draws the same pixels run after run on one machine; the slack covers a few
    anti-aliased edge pixels moving between FreeType or matplotlib builds. A changed
    chart differs far more: another title alone changes about 60 pixels, one count of
    one step about 3,500.
    """
    if actual.shape != expected.shape:
        return False
    differs = np.abs(actual.astype(np.int16) - expected.astype(np.int16)).max(axis=-1) > 16
    return int(differs.sum()) <= max_pixels
