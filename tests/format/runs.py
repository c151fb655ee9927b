"""A minimal valid run document, for tests of what enters one."""

from __future__ import annotations

from typing import Any


def run_document(run_id: str = "r", experiment_id: str = "1") -> dict[str, Any]:
    """A fresh run document with nothing logged (``writers`` empty)."""
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "status": "RUNNING",
        "start_time": 1,
        "lifecycle_stage": "active",
        "params": {},
        "tags": {},
        "latest_metrics": {},
        "segments": [],
        "writers": {},
    }
