"""Two experiment documents with one name: list one, leave the other out, never fail.

Name claims keep names unique (``format.name_claims``), but a partial restore from a
backup, or a root written by an older version, can hold two experiment documents of
one name. MLflow's experiments table (which the index reuses) has a unique name, so
mirroring both would fail the whole sync, and every search with it. Instead the one
the name's claim points at is listed (when the claim points at neither, the lowest
id, the first created), and the other is left out with a warning naming both keys.
A left-out document is indexed with no ETag, so every listing fetches it again: once
the listed one is renamed or removed, the other is listed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mlflow_plugin.format import keys
from mlflow_plugin.format.documents import read_document
from mlflow_plugin.index.mlflow_internals import SqlExperiment, SqlExperimentTag
from mlflow_plugin.index.schema import IndexedDocument
from mlflow_plugin.objectstore import NotFound, ObjectStore
from mlflow_plugin.objectstore.errors import ObjectStoreError

__all__ = ["names_left_out"]

_log = logging.getLogger(__name__)
_warned: set[tuple[str, int, int]] = set()  # (root, listed, left out): warn once


def _claimed_id(store: ObjectStore, name: str) -> int | None:
    try:
        claim = read_document(store, keys.experiment_name_key(name))[0]
        return int(claim["experiment_id"])
    except (NotFound, ObjectStoreError, KeyError, TypeError, ValueError):
        return None  # no usable claim: the lowest id decides


def _warn(root: str, name: str, listed: int, left_out: int) -> None:
    if (root, listed, left_out) in _warned:
        return
    _warned.add((root, listed, left_out))
    _log.warning(
        "experiments %r and %r in %s are both named %r: the first is listed, the second "
        "left out of searches until one is renamed or deleted",
        keys.experiment_key(str(listed)),
        keys.experiment_key(str(left_out)),
        root,
        name,
    )


def names_left_out(
    session: Session, store: ObjectStore, named: Sequence[tuple[int, str]]
) -> set[int]:
    """Which of the experiments about to be mirrored to leave out, to keep names unique.

    ``named`` holds (experiment id, name) of the experiments about to be inserted;
    those already in the index take part too, and one that gives way is removed from
    the tables here and indexed with no ETag. The caller indexes the returned ones with
    no ETag and no body (so that every listing fetches them again).
    """
    by_name: dict[str, list[int]] = {}
    for experiment_id, name in named:
        by_name.setdefault(name, []).append(experiment_id)
    if not by_name:
        return set()
    existing: Sequence[Any] = session.execute(
        select(SqlExperiment.experiment_id, SqlExperiment.name).where(
            SqlExperiment.name.in_(list(by_name))
        )
    ).all()
    indexed: set[int] = set()
    for experiment_id, name in existing:
        by_name[name].append(experiment_id)
        indexed.add(experiment_id)
    losers: set[int] = set()
    for name, ids in by_name.items():
        if len(ids) < 2:
            continue
        claimed = _claimed_id(store, name)
        winner = claimed if claimed in ids else min(ids)
        for loser in ids:
            if loser != winner:
                losers.add(loser)
                _warn(store.location, name, winner, loser)
    displaced = sorted(losers & indexed)
    if displaced:  # an indexed experiment gave way: out of the tables, fetched again later
        session.execute(
            delete(SqlExperimentTag).where(SqlExperimentTag.experiment_id.in_(displaced))
        )
        session.execute(delete(SqlExperiment).where(SqlExperiment.experiment_id.in_(displaced)))
        session.execute(
            update(IndexedDocument)
            .where(IndexedDocument.key.in_([keys.experiment_key(str(e)) for e in displaced]))
            .values(etag="", body="")
        )
    return losers - indexed
