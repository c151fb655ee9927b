"""A training process that logs through MLflow's client, as a user's training script does.

``python -m tests.torture.trainer URI RUN_ID LEDGER [STEPS_FOLDER]`` logs the planned
batches 0, 1, 2... (``planned_batch``: two metric points, a tag every fifth batch) with
``MlflowClient.log_batch``, with the store's default settings unless URI says otherwise,
and appends to LEDGER (see ``ledger.py``) after each call: the batch number once the
call returned, ``error <number> <error code> <message>`` once it raised MLflow's error.
Any other exception escaping a store method ends the process with exit code 3.

Without STEPS_FOLDER it logs until it is killed. With one, it follows the test's steps,
each announced by an empty file appearing there:

- ``deleted``: another process deleted the run. The trainer calls
  ``mlflow.flush_async_logging()``, which uploads what it buffered and so learns of the
  deletion, writes ``learned`` (or ``learned-error <error code> <message>`` if that
  call raised MLflow's error) and goes on logging;
- ``restored``: the run is active again; the trainer logs ``AFTER_RESTORE`` more
  batches, writes ``done`` and exits 0 (its buffer is uploaded at interpreter exit).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.torture.writer import PACE_S, planned_batch

AFTER_RESTORE = 20
_UNEXPECTED_EXIT = 3


def _one_line(exc: MlflowException) -> str:
    return f"{exc.error_code} {' '.join(exc.message.split())[:300]}"


def main(argv: list[str]) -> int:
    uri, run_id, ledger = argv[:3]
    steps = Path(argv[3]) if len(argv) > 3 else None
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    out = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def note(line: str) -> None:
        os.write(out, f"{line}\n".encode())

    note("start")
    learned = False
    last = None  # the last batch to log, once the run is restored
    number = 0
    while last is None or number <= last:
        if steps is not None and not learned and (steps / "deleted").exists():
            try:
                mlflow.flush_async_logging()
                note("learned")
            except MlflowException as exc:
                note(f"learned-error {_one_line(exc)}")
            learned = True
        if steps is not None and last is None and (steps / "restored").exists():
            last = number + AFTER_RESTORE - 1
        metrics, tags = planned_batch(number)
        try:
            client.log_batch(run_id, metrics=metrics, tags=tags)
            note(str(number))
        except MlflowException as exc:
            note(f"error {number} {_one_line(exc)}")
        except Exception as exc:  # a store method must raise nothing but MlflowException
            note(f"crash {number} {type(exc).__name__}: {exc}")
            return _UNEXPECTED_EXIT
        number += 1
        time.sleep(PACE_S)
    note("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
