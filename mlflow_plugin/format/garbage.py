"""Garbage collection: what no document names any more, and what was deleted long ago.

``collect_garbage`` walks the root once and removes (or, in a dry run, only lists):

- **orphan metric segments**: objects under ``experiments/<id>/metrics/<run_id>/`` that
  the run's manifest does not name. A writer uploads a segment *before* the
  compare-and-swap that enters it in the manifest, and compaction deletes merged
  segments only after its swap, so a segment is an orphan only once it is older than
  the grace period (default 24 h, from the object's last-modified time; an object
  whose age is unknown is kept). The segment folder is listed *before* the run
  document is read, so a segment whose swap lands in between is seen in the manifest.
- **deleted runs** whose ``deleted_time`` is older than the retention (a run of a
  deleted experiment is deleted with it, at the later of the two times:
  ``run_stage``): segments, the
  run's artifacts when they are the run's own folder under ``<root>/artifacts/``, the
  ``run-locations`` pointer, and the run document last (a crash half-way leaves the
  document, so the next collection finishes the job).
- **deleted experiments** whose ``last_update_time`` (set when they were deleted) is
  older than the retention, as MLflow's SQL store cascades them: every run, the
  experiment's logged models, its default artifact folder ``<root>/artifacts/<id>/``,
  whatever else is left under ``experiments/<id>/``, the name claim (only while it
  still names this experiment) and the experiment document last.
- **deleted logged models** whose ``last_updated_timestamp`` is older than the
  retention: the document and the model's own artifact folder under the root.
- **orphan run pointers** (``run-locations/<run_id>`` with no run document, older than
  the grace period: ``create_run`` writes the pointer just before the document) and
  probe objects older than the grace period that a crashed ``doctor`` left.

``purge_run``, ``purge_experiment`` and ``purge_logged_model`` remove one deleted item
now, whatever its age, the same way: MLflow's own ``mlflow gc`` reaches them through
the tracking store's hard-delete hooks, after choosing what to delete itself.

A root without ``_format.json`` (a mistyped URI) or of a newer format than this
plugin's is refused before anything is read. Artifacts outside the root (another
bucket, a custom location) are never touched; they are counted in the report so an
operator can remove them. ``mlflow-artifacts:/`` URIs (``mlflow server`` proxying
artifacts) are resolved against the server's ``--artifacts-destination``,
``<root>/artifacts`` unless told otherwise.

A document that cannot be read (damaged: not JSON, or failing its kind's schema) is
never deleted and never stops the collection: it is skipped and named in the report's
``damaged`` list, and what it would have told (a run's segments, a model's artifacts)
is left in place. A deleted experiment holding one is kept whole (its readable deleted
runs still go one by one); ``purge_experiment`` then raises ``CorruptObject`` naming it.

There is no conditional delete on S3, so a run or experiment restored in the very
moment it is collected can still be lost; each one is re-read just before deletion to
keep that window short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mlflow_plugin.format import change_journal, keys
from mlflow_plugin.format.documents import Document, read_document, read_or_none
from mlflow_plugin.format.run_stage import effective_deleted_time
from mlflow_plugin.format.schema import DELETED, RUN
from mlflow_plugin.format.version import open_root
from mlflow_plugin.objectstore import (
    InvalidStoreUri,
    NotFound,
    ObjectInfo,
    ObjectStore,
    ObjectStoreError,
    StoreLocation,
    parse_store_uri,
)
from mlflow_plugin.objectstore.errors import CorruptObject
from mlflow_plugin.objectstore.probe import PROBE_PREFIX

__all__ = [
    "DEFAULT_GRACE_HOURS",
    "DEFAULT_OLDER_THAN_DAYS",
    "EXPERIMENTS",
    "JOURNAL",
    "KINDS",
    "MODELS",
    "ORPHAN_SEGMENTS",
    "POINTERS",
    "PROBES",
    "RUNS",
    "GcReport",
    "NotAStore",
    "ProgressCallback",
    "collect_garbage",
    "purge_experiment",
    "purge_logged_model",
    "purge_run",
]

DEFAULT_OLDER_THAN_DAYS = 30.0
DEFAULT_GRACE_HOURS = 24.0
_DELETE_WORKERS = 16
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

#: Called as ``progress(label, done, total)`` while the collection advances.
ProgressCallback = Callable[[str, int, int], None]

ORPHAN_SEGMENTS = "orphan metric segments"
RUNS = "deleted runs"
EXPERIMENTS = "deleted experiments"
MODELS = "deleted logged models"
POINTERS = "orphan run pointers"
PROBES = "stale probe objects"
JOURNAL = "expired change-journal entries"
KINDS = (ORPHAN_SEGMENTS, RUNS, EXPERIMENTS, MODELS, POINTERS, PROBES, JOURNAL)
_ITEM_NAMES = {
    ORPHAN_SEGMENTS: "orphan segment",
    RUNS: "run",
    EXPERIMENTS: "experiment",
    MODELS: "logged model",
    POINTERS: "orphan run pointer",
    PROBES: "probe object",
    JOURNAL: "change-journal entries",
}


class NotAStore(ObjectStoreError):
    """The location holds no ``_format.json``: most likely a mistyped URI."""


@dataclass
class GcReport:
    """What was (or, in a dry run, would be) deleted."""

    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    objects: int = 0
    bytes: int = 0
    #: One line per item: ``"run 0123abcd (experiment 4): 7 objects, 52100 bytes"``.
    items: list[str] = field(default_factory=list)
    #: Artifact locations of collected runs, models and experiments outside the root.
    artifacts_left: list[str] = field(default_factory=list)
    #: Documents that could not be read, so were kept: ``"<key>: <why>"``, one per key.
    damaged: list[str] = field(default_factory=list)

    def add(self, kind: str, description: str, objects: Iterable[ObjectInfo]) -> None:
        listed = list(objects)
        size = sum(info.size for info in listed)
        self.counts[kind] += 1
        self.objects += len(listed)
        self.bytes += size
        plural = "" if len(listed) == 1 else "s"
        self.items.append(
            f"{_ITEM_NAMES[kind]} {description}: {len(listed)} object{plural}, {size} bytes"
        )


def _run_segments_prefix(experiment_id: str, run_id: str) -> str:
    # keys spells the segment key; its folder is the run's segment folder.
    return keys.metric_segment_key(experiment_id, run_id, "0").rsplit("/", 1)[0] + "/"


def _experiment_segments_prefix(experiment_id: str) -> str:
    return _run_segments_prefix(experiment_id, "0").rsplit("/", 2)[0] + "/"


def _experiment_folder(experiment_id: str) -> str:
    return keys.experiment_key(experiment_id).rsplit("/", 1)[0] + "/"


_RUN_LOCATIONS_PREFIX = keys.run_location_key("0").rsplit("/", 1)[0] + "/"


@dataclass
class _Doomed:
    """One item's objects: ``bulk`` deleted first (in parallel), then ``ordered`` in order."""

    bulk: dict[str, ObjectInfo] = field(default_factory=dict)
    ordered: dict[str, ObjectInfo] = field(default_factory=dict)

    def add_bulk(self, infos: Iterable[ObjectInfo]) -> None:
        for info in infos:
            if info.key not in self.ordered:
                self.bulk.setdefault(info.key, info)

    def add_ordered(self, infos: Iterable[ObjectInfo]) -> None:
        for info in infos:
            self.bulk.pop(info.key, None)
            self.ordered.setdefault(info.key, info)

    def merge(self, other: _Doomed) -> None:
        self.add_bulk(other.bulk.values())
        self.add_ordered(other.ordered.values())

    def objects(self) -> list[ObjectInfo]:
        return [*self.bulk.values(), *self.ordered.values()]


def collect_garbage(
    store: ObjectStore,
    location: StoreLocation,
    *,
    older_than_days: float = DEFAULT_OLDER_THAN_DAYS,
    grace_hours: float = DEFAULT_GRACE_HOURS,
    dry_run: bool = False,
    artifacts_destination: str | None = None,
    now_ms: int | None = None,
    progress: ProgressCallback | None = None,
) -> GcReport:
    """Collect the root's garbage (see the module docstring); return what went.

    >>> from mlflow_plugin.objectstore import open_object_store, parse_store_uri
    >>> location = parse_store_uri("bucket+file:./mlruns-bucket")
    >>> store = open_object_store(location)
    >>> collect_garbage(store, location, dry_run=True).counts["deleted runs"]  # doctest: +SKIP
    0
    """
    if older_than_days < 0 or grace_hours < 0:
        raise ValueError("retention and grace period must not be negative")
    if not store.exists(keys.FORMAT_KEY):
        raise NotAStore(
            f"{store.location} holds no mlflow-bucket store ({keys.FORMAT_KEY} is missing); "
            "nothing was collected"
        )
    # Refuses a root of a newer format, whose objects this collector would not understand.
    open_root(store)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    destination = _artifacts_destination(location, artifacts_destination)
    collector = _Collector(
        store,
        location,
        destination,
        deleted_before=now - int(older_than_days * _DAY_MS),
        written_before=now - int(grace_hours * _HOUR_MS),
        dry_run=dry_run,
        progress=progress or (lambda label, done, total: None),
    )
    return collector.collect()


def purge_run(
    store: ObjectStore,
    location: StoreLocation,
    experiment_id: str,
    run_id: str,
    *,
    artifacts_destination: str | None = None,
) -> GcReport:
    """Permanently delete one deleted run now; a run not (or no longer) deleted is kept."""
    with _collector_now(store, location, artifacts_destination) as collector:
        collector._purge_run(experiment_id, run_id)
        return collector.report


def purge_experiment(
    store: ObjectStore,
    location: StoreLocation,
    experiment_id: str,
    *,
    artifacts_destination: str | None = None,
) -> GcReport:
    """Permanently delete one deleted experiment now, with its runs and logged models."""
    with _collector_now(store, location, artifacts_destination) as collector:
        models = collector._model_docs().get(experiment_id, [])
        if not collector._purge_experiment(experiment_id, models):
            held = collector.damaged_in(_experiment_folder(experiment_id))
            if held:
                raise CorruptObject(
                    f"experiment {experiment_id} was kept: documents in it cannot be read "
                    f"({'; '.join(held)})"
                )
        return collector.report


def purge_logged_model(
    store: ObjectStore,
    location: StoreLocation,
    model_id: str,
    *,
    artifacts_destination: str | None = None,
) -> GcReport:
    """Permanently delete one deleted logged model now; a model not deleted is kept."""
    with _collector_now(store, location, artifacts_destination) as collector:
        doc = collector._read(keys.logged_model_key(model_id))
        if doc is not None and doc["lifecycle_stage"] == DELETED:
            collector._purge(MODELS, model_id, collector._model_objects(doc))
        return collector.report


def _artifacts_destination(location: StoreLocation, uri: str | None) -> StoreLocation:
    """Where ``mlflow-artifacts:/`` URIs point: ``uri``, or ``<root>/artifacts``."""
    return parse_store_uri(uri) if uri else location.join("artifacts")


@contextmanager
def _collector_now(
    store: ObjectStore, location: StoreLocation, artifacts_destination: str | None
) -> Iterator[_Collector]:
    """A collector for which everything deleted is old enough: the caller chose what goes."""
    now = int(time.time() * 1000)
    destination = _artifacts_destination(location, artifacts_destination)
    collector = _Collector(
        store,
        location,
        destination,
        deleted_before=now,
        written_before=now,
        dry_run=False,
        progress=lambda label, done, total: None,
    )
    try:
        yield collector
    finally:
        collector._pool.shutdown()


class _Collector:
    def __init__(
        self,
        store: ObjectStore,
        location: StoreLocation,
        destination: StoreLocation,
        *,
        deleted_before: int,
        written_before: int,
        dry_run: bool,
        progress: ProgressCallback,
    ) -> None:
        self.store = store
        self.location = location
        self.destination = destination
        self.deleted_before = deleted_before
        self.written_before_s = written_before / 1000
        self.report = GcReport(dry_run=dry_run)
        self.progress = progress
        self.live_runs: set[str] = set()
        self._damaged_keys: set[str] = set()
        self._pool = ThreadPoolExecutor(_DELETE_WORKERS, thread_name_prefix="mlflow-bucket-gc")

    # -- the walk ----------------------------------------------------------------------

    def collect(self) -> GcReport:
        try:
            models = self._model_docs()
            experiment_ids = [
                folder.split("/")[1]
                for folder in self.store.list_dir(keys.experiments_prefix()).folders
            ]
            for done, experiment_id in enumerate(experiment_ids):
                self.progress("scanning experiments", done, len(experiment_ids))
                self._experiment(experiment_id, models)
            self.progress("scanning experiments", len(experiment_ids), len(experiment_ids))
            for docs in models.values():
                for doc in docs:
                    if doc["lifecycle_stage"] == DELETED and self._old(
                        doc.get("last_updated_timestamp")
                    ):
                        self._purge(MODELS, doc["model_id"], self._model_objects(doc))
            self._orphan_pointers()
            self._stale_probes()
            self._expired_journal()
        finally:
            self._pool.shutdown()
        return self.report

    def _experiment(self, experiment_id: str, models: dict[str, list[Document]]) -> None:
        try:
            # None: a folder without a readable document, not ours to judge; only its runs.
            doc = self._read(keys.experiment_key(experiment_id))
        except keys.InvalidId:
            return  # not a folder this format writes
        if (
            doc is not None
            and doc["lifecycle_stage"] == DELETED
            and self._old(doc.get("last_update_time"))
            and self._purge_experiment(experiment_id, models.get(experiment_id, []))
        ):
            models.pop(experiment_id, None)  # gone with their experiment
            return
        # The segment folders first, then the documents: see the module docstring.
        segments = self._listing_by_run(_experiment_segments_prefix(experiment_id))
        run_docs = self._run_docs(experiment_id)
        purged: set[str] = set()
        for run_id, run in run_docs.items():
            deleted = self._old(effective_deleted_time(run, doc))
            if deleted and self._purge_run(experiment_id, run_id):
                purged.add(run_id)
            else:
                self.live_runs.add(run_id)
        runs_prefix = keys.experiment_runs_prefix(experiment_id)
        unreadable = {
            key[len(runs_prefix) :].removesuffix(".json")
            for key in self._damaged_keys
            if key.startswith(runs_prefix)
        }
        for run_id, listed in segments.items():
            if run_id in purged or run_id in unreadable:
                continue  # went with the run, or named by a manifest that cannot be read
            owner = run_docs.get(run_id)
            named = {s["name"] for s in owner["segments"]} if owner is not None else set()
            for info in listed:
                name = info.key.rsplit("/", 1)[-1].removesuffix(".parquet")
                if name not in named and self._written_long_ago(info):
                    doomed = _Doomed()
                    doomed.add_ordered([info])
                    self._purge(ORPHAN_SEGMENTS, info.key, doomed)

    # -- runs --------------------------------------------------------------------------

    def _run_docs(self, experiment_id: str) -> dict[str, Document]:
        docs: dict[str, Document] = {}
        for info in self.store.list(keys.experiment_runs_prefix(experiment_id)):
            if not RUN.is_key(info.key):
                continue  # a stray object there is no run
            doc = self._read(info.key)
            if doc is not None:
                docs[doc["run_id"]] = doc
        return docs

    def _purge_run(self, experiment_id: str, run_id: str) -> bool:
        key = keys.run_key(experiment_id, run_id)
        try:  # re-read: it (or its experiment) may have been restored since the listing
            experiment = self._read(keys.experiment_key(experiment_id))
            doc = read_document(self.store, key)[0]
        except NotFound:
            return True
        except CorruptObject as exc:
            self._damaged(key, exc)
            return False
        if not self._old(effective_deleted_time(doc, experiment)):
            return False
        self._purge(RUNS, f"{run_id} (experiment {experiment_id})", self._run_objects(doc))
        return True

    def _run_objects(self, doc: Document, inside: str | None = None) -> _Doomed:
        """A run's objects: segments and artifacts, then its pointer, then its document.

        Artifacts already inside ``inside`` (an experiment folder going as a whole) are
        left to that folder.
        """
        experiment_id, run_id = doc["experiment_id"], doc["run_id"]
        doomed = _Doomed()
        doomed.add_bulk(self.store.list(_run_segments_prefix(experiment_id, run_id)))
        folder = self._own_folder(
            doc.get("artifact_uri"), lambda rel: rel.endswith(f"/{run_id}/artifacts")
        )
        if folder is not None and (inside is None or not folder.startswith(inside)):
            doomed.add_bulk(self.store.list(folder))
        doomed.add_ordered(self._existing(keys.run_location_key(run_id)))
        doomed.add_ordered(self._existing(keys.run_key(experiment_id, run_id)))
        return doomed

    # -- experiments and models --------------------------------------------------------

    def _purge_experiment(self, experiment_id: str, models: list[Document]) -> bool:
        document = keys.experiment_key(experiment_id)
        try:  # re-read: it may have been restored since the listing
            doc = read_document(self.store, document)[0]
        except NotFound:
            return True
        except CorruptObject as exc:
            self._damaged(document, exc)
            return False
        if doc["lifecycle_stage"] != DELETED or not self._old(doc.get("last_update_time")):
            return False
        runs = self._run_docs(experiment_id)
        if self.damaged_in(_experiment_folder(experiment_id)):
            return False  # what a damaged document names cannot be told apart: keep it all
        folder = self._own_folder(
            doc.get("artifact_location"), lambda rel: rel == f"artifacts/{experiment_id}"
        )
        doomed = _Doomed()
        if folder is not None:
            doomed.add_bulk(self.store.list(folder))
        doomed.add_bulk(self.store.list(_experiment_segments_prefix(experiment_id)))
        for run in runs.values():
            doomed.merge(self._run_objects(run, inside=folder))
        for model in models:
            doomed.merge(self._model_objects(model, inside=folder))
        doomed.add_ordered(
            info
            for info in self.store.list(_experiment_folder(experiment_id))
            if info.key != document and info.key not in doomed.bulk
        )
        claim = keys.experiment_name_key(doc["name"])
        try:
            if read_document(self.store, claim)[0].get("experiment_id") == experiment_id:
                doomed.add_ordered(self._existing(claim))
        except NotFound:
            pass
        except CorruptObject as exc:
            self._damaged(claim, exc)
        # The document last: while it exists (deleted) nobody can take over the name claim,
        # and a collection cut short is finished by the next one.
        doomed.add_ordered(self._existing(document))
        described = f"{experiment_id} {doc['name']!r} ({len(runs)} runs, {len(models)} models)"
        self._purge(EXPERIMENTS, described, doomed)
        return True

    def _model_docs(self) -> dict[str, list[Document]]:
        by_experiment: dict[str, list[Document]] = {}
        for info in self.store.list(keys.logged_models_prefix()):
            doc = self._read(info.key)
            if doc is not None:
                by_experiment.setdefault(str(doc["experiment_id"]), []).append(doc)
        return by_experiment

    def _model_objects(self, doc: Document, inside: str | None = None) -> _Doomed:
        model_id = doc["model_id"]
        doomed = _Doomed()
        folder = self._own_folder(
            doc.get("artifact_location"), lambda rel: rel.endswith(f"/models/{model_id}/artifacts")
        )
        if folder is not None and (inside is None or not folder.startswith(inside)):
            doomed.add_bulk(self.store.list(folder))
        doomed.add_ordered(self._existing(keys.logged_model_key(model_id)))
        return doomed

    # -- pointers and probes -----------------------------------------------------------

    def _orphan_pointers(self) -> None:
        for info in self.store.list(_RUN_LOCATIONS_PREFIX):
            run_id = info.key.rsplit("/", 1)[-1].removesuffix(".json")
            if run_id in self.live_runs or not self._written_long_ago(info):
                continue
            try:
                pointer = read_document(self.store, info.key)[0]
                self.store.head(keys.run_key(str(pointer["experiment_id"]), run_id))
            except NotFound:
                doomed = _Doomed()
                doomed.add_ordered([info])
                self._purge(POINTERS, run_id, doomed)
            except CorruptObject as exc:
                self._damaged(info.key, exc)

    def _stale_probes(self) -> None:
        for info in self.store.list(PROBE_PREFIX):
            if self._written_long_ago(info):
                doomed = _Doomed()
                doomed.add_ordered([info])
                self._purge(PROBES, info.key, doomed)

    def _expired_journal(self) -> None:
        # Counted from the grace period's start, so entries outlive it by the retention.
        since = int(self.written_before_s * 1000)
        expired = list(change_journal.expired_entries(self.store, since))
        if expired:
            doomed = _Doomed()
            doomed.add_bulk(expired)
            description = f"older than {change_journal.RETENTION_MS // 86_400_000} days"
            self._purge(JOURNAL, description, doomed)

    # -- helpers -----------------------------------------------------------------------

    def _read(self, key: str) -> Document | None:
        """The document under ``key``; None if it is gone, or damaged (then reported)."""
        try:
            found = read_or_none(self.store, key)
        except CorruptObject as exc:
            self._damaged(key, exc)
            return None
        return None if found is None else found[0]

    def damaged_in(self, prefix: str) -> list[str]:
        """The report's lines of the damaged documents found under ``prefix``."""
        return [line for line in self.report.damaged if line.startswith(prefix)]

    def _damaged(self, key: str, exc: CorruptObject) -> None:
        """Keep ``key`` (what cannot be read is never deleted) and name it in the report."""
        if key not in self._damaged_keys:
            self._damaged_keys.add(key)
            self.report.damaged.append(f"{key}: {exc}")

    def _old(self, millis: object) -> bool:
        return isinstance(millis, int | float) and millis <= self.deleted_before

    def _written_long_ago(self, info: ObjectInfo) -> bool:
        return info.last_modified is not None and info.last_modified <= self.written_before_s

    def _existing(self, key: str) -> list[ObjectInfo]:
        try:
            return [self.store.head(key)]
        except NotFound:
            return []

    def _listing_by_run(self, prefix: str) -> dict[str, list[ObjectInfo]]:
        by_run: dict[str, list[ObjectInfo]] = {}
        for info in self.store.list(prefix):
            run_id = info.key[len(prefix) :].split("/", 1)[0]
            by_run.setdefault(run_id, []).append(info)
        return by_run

    def _own_folder(self, uri: object, owns: Callable[[str], bool]) -> str | None:
        """The key prefix of an artifact URI if it is its owner's folder under ``artifacts/``.

        ``owns`` checks the path relative to the root (``artifacts/4/<run_id>/artifacts``).
        Anything else is recorded in the report as left alone, and ``None`` returned.
        """
        if not isinstance(uri, str) or not uri:
            return None
        relative = self._relative_to_root(uri)
        if relative is None or not relative.startswith("artifacts/") or not owns(relative):
            self.report.artifacts_left.append(uri)
            return None
        return relative + "/"

    def _relative_to_root(self, uri: str) -> str | None:
        try:
            if uri.startswith("mlflow-artifacts:"):
                path = urlsplit(uri).path.strip("/")
                target = self.destination.join(path) if path else self.destination
            else:
                target = parse_store_uri(uri)
        except InvalidStoreUri:
            return None
        root = self.location
        if target.scheme != root.scheme:
            return None
        if root.is_s3:
            if target.bucket != root.bucket or target.endpoint_url() != root.endpoint_url():
                return None
            base, inner = root.prefix, target.prefix
        else:
            base, inner = root.path.rstrip("/"), target.path.rstrip("/")
        if not base:
            return inner or None
        if not inner.startswith(base + "/"):
            return None
        return inner[len(base) + 1 :] or None

    def _purge(self, kind: str, description: str, doomed: _Doomed) -> None:
        self.report.add(kind, description, doomed.objects())
        if self.report.dry_run:
            return
        list(self._pool.map(lambda info: self.store.delete(info.key), doomed.bulk.values()))
        for info in doomed.ordered.values():
            self.store.delete(info.key)
