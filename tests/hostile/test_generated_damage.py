"""Generated damage to every kind of stored document, read back through the stores.

A root holds a healthy and a victim object of every kind (experiment, run, run pointer,
logged model, registered model, model version, both kinds of name claim) and the format
file. For each generated case (``tests/hostile/damage.py``) the victim's document is
replaced by a raw write that bypasses the store (a file written in the folder, a boto3
``put_object``), the store's read and search methods are called, and the original is put
back. For every case:

- no exception other than ``MlflowException`` escapes a store method;
- the healthy objects are still listed and read back exactly as before;
- a document the format's schema calls damaged is left out of listings, and a get or an
  update of it is ``MlflowException(INTERNAL_ERROR)`` naming its key; one the schema
  accepts (an extra field, a null optional field) is listed, read and updated as usual.

Most cases run on ``bucket+file`` in-process, every tenth also on ``bucket+s3`` (moto);
``test_server_never_answers_html`` sends a smaller set through a real ``mlflow server``.
"""

from __future__ import annotations

import os
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.entities import (
    Dataset,
    DatasetInput,
    ExperimentTag,
    InputTag,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelTag,
    Metric,
    Param,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.exceptions import MlflowException

from mlflow_plugin.format import keys
from mlflow_plugin.format.schema import document_problems, schema_of_key
from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client
from mlflow_plugin.registry import keys as registry_keys
from mlflow_plugin.registry.store import BucketRegistryStore
from mlflow_plugin.tracking.store import BucketTrackingStore
from tests.hostile.damage import RUN_COUNTS, DamageCase, damage_cases
from tests.servers import S3Endpoint, mlflow_server

T0 = 1_000_000
KINDS = (
    "experiment",
    "experiment name claim",
    "run",
    "run location",
    "logged model",
    "registered model",
    "model version",
    "registered model name claim",
    "format",
)
MOTO_SHARE = 10  # every tenth case also runs on bucket+s3
RUN_BATCH = 8  # run cases checked together, each on its own victim run, by one search


# -- raw access to the root, around the store -----------------------------------------------


class RawRoot:
    """Reads and writes objects without going through any store of this package."""

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError


@dataclass
class FolderRoot(RawRoot):
    folder: Path

    def get(self, key: str) -> bytes:
        return (self.folder / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        # A new file renamed over the old one, as an editor or a restore would leave it.
        target = self.folder / key
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_bytes(data)
        os.replace(temporary, target)


@dataclass
class BucketRoot(RawRoot):
    endpoint: str
    bucket: str
    prefix: str

    def _client(self) -> Any:
        return s3_client(S3ClientSettings(endpoint_url=self.endpoint, region="us-east-1"))

    def get(self, key: str) -> bytes:
        answer = self._client().get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        data: bytes = answer["Body"].read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self._client().put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    uri: str
    raw: RawRoot
    tracking: BucketTrackingStore
    registry: BucketRegistryStore
    experiment_id: str = ""  # holds both runs and both logged models
    victim_experiment: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # "victim"/"healthy" -> run id
    more_victims: list[str] = field(default_factory=list)  # runs shaped like the victim
    models: dict[str, str] = field(default_factory=dict)  # -> logged model id
    registered: dict[str, str] = field(default_factory=dict)  # -> registered model name
    victim_keys: dict[str, str] = field(default_factory=dict)  # kind -> key
    healthy: dict[str, Any] = field(default_factory=dict)  # what must read back unchanged


def _fill(world: World) -> None:
    tracking, registry = world.tracking, world.registry
    world.experiment_id = tracking.create_experiment("damage-healthy")
    world.victim_experiment = tracking.create_experiment("damage-victim")
    for role in ("victim", "healthy"):
        run_id = tracking.create_run(
            world.experiment_id, "user", T0, [RunTag("who", role)], role
        ).info.run_id
        world.runs[role] = run_id
        tracking.log_batch(
            run_id,
            [Metric("loss", 1.0 / (i + 1), T0 + i, i) for i in range(5)],
            [Param("lr", "0.1")],
            [RunTag("state", "ok")],
        )
        dataset = Dataset("ds", "d1", "local", "/data", schema="{}", profile="{}")
        tracking.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "t")])])
        model = tracking.create_logged_model(
            world.experiment_id,
            name=f"{role}-model",
            source_run_id=run_id,
            tags=[LoggedModelTag("t", "v")],
            params=[LoggedModelParameter("p", "1")],
        )
        world.models[role] = model.model_id
        tracking.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
        tracking.log_batch(
            run_id,
            [Metric("acc", 0.5, T0, 0, model.model_id, "ds", "d1")],
            [],
            [],
        )
        tracking.update_run_info(run_id, RunStatus.FINISHED, T0 + 10, None)
        name = f"{role}-registered"
        world.registered[role] = name
        registry.create_registered_model(name, [RegisteredModelTag("team", "a")], "described")
        registry.create_model_version(
            name, "s3://models/m", run_id, [ModelVersionTag("k", "v")], description="one"
        )
        registry.set_registered_model_alias(name, "champion", 1)
    for _ in range(1, RUN_BATCH):
        # More victims of the same shape: one search then checks a batch of cases.
        run_id = tracking.create_run(
            world.experiment_id, "user", T0, [RunTag("who", "victim")], "victim"
        ).info.run_id
        world.more_victims.append(run_id)
        tracking.log_batch(
            run_id,
            [Metric("loss", 1.0 / (i + 1), T0 + i, i) for i in range(5)],
            [Param("lr", "0.1")],
            [RunTag("state", "ok")],
        )
        tracking.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "t")])])
        tracking.log_outputs(run_id, [LoggedModelOutput(world.models["victim"], 0)])
        tracking.log_batch(
            run_id, [Metric("acc", 0.5, T0, 0, world.models["victim"], "ds", "d1")], [], []
        )
        tracking.update_run_info(run_id, RunStatus.FINISHED, T0 + 10, None)
    tracking.flush()
    model_key = registry._model_doc(world.registered["victim"])["model_key"]
    world.victim_keys = {
        "experiment": keys.experiment_key(world.victim_experiment),
        "experiment name claim": keys.experiment_name_key("damage-victim"),
        "run": keys.run_key(world.experiment_id, world.runs["victim"]),
        "run location": keys.run_location_key(world.runs["victim"]),
        "logged model": keys.logged_model_key(world.models["victim"]),
        "registered model": registry_keys.model_key(model_key),
        "model version": registry_keys.version_key(model_key, 1),
        "registered model name claim": registry_keys.model_name_key(world.registered["victim"]),
        "format": keys.FORMAT_KEY,
    }
    world.healthy = _healthy_state(world)


def _history(world: World, run_ids: list[str]) -> list[tuple[str, float, int, int]]:
    points = world.tracking.get_metric_history_bulk_interval(run_ids, "loss", 10, None, None)
    return sorted((p.run_id, p.value, p.timestamp, p.step) for p in points)


def _healthy_state(world: World) -> dict[str, Any]:
    tracking, registry = world.tracking, world.registry
    name = world.registered["healthy"]
    return {
        "run": tracking.get_run(world.runs["healthy"]).to_proto(),
        "history": _history(world, [world.runs["healthy"]]),
        "logged model": tracking.get_logged_model(world.models["healthy"]).to_proto(),
        "experiment": tracking.get_experiment(world.experiment_id).to_proto(),
        "registered model": registry.get_registered_model(name).to_proto(),
        "model version": registry.get_model_version(name, 1).to_proto(),
    }


def _build(uri: str, raw: RawRoot) -> World:
    world = World(
        uri,
        raw,
        BucketTrackingStore(uri, recover_in_background=False),
        BucketRegistryStore(uri),
    )
    _fill(world)
    return world


# -- checking one case -----------------------------------------------------------------------


class Findings:
    """What went wrong in one case; empty when the stores behaved."""

    def __init__(self, case: str, key: str, damaged: bool) -> None:
        self.case = case
        self.key = key
        self.damaged = damaged
        self.problems: list[str] = []

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)

    def get(self, what: str, call: Callable[[], object], tolerate: tuple[str, ...] = ()) -> Any:
        """A get of the victim: named failure if damaged, an answer otherwise."""
        try:
            answer = call()
        except MlflowException as exc:
            if not self.damaged:
                self.expect(exc.error_code in tolerate, f"{what} refused a sound document: {exc}")
            else:
                self.expect(
                    exc.error_code == "INTERNAL_ERROR" and self.key in exc.message,
                    f"{what} answered {exc.error_code} without naming {self.key!r}: {exc}",
                )
            return None
        self.expect(not self.damaged, f"{what} answered for a damaged document: {answer!r:.200}")
        return answer


def _listed(findings: Findings, what: str, found: list[str], victim: str, healthy: str) -> None:
    findings.expect(healthy in found, f"{what} lost the healthy object")
    if findings.damaged:
        findings.expect(victim not in found, f"{what} listed the damaged object")
    else:
        findings.expect(victim in found, f"{what} left out a sound object")


def _check_runs(world: World, checks: list[tuple[str, Findings]]) -> None:
    """Each damaged victim run on its own; the healthy run once for the whole batch."""
    tracking, healthy = world.tracking, world.runs["healthy"]
    searched = False
    for run_id, findings in checks:
        if findings.key == keys.run_location_key(run_id):
            # As another process would: the pointer is otherwise cached for good.
            tracking.context.run_experiments.pop(run_id, None)
            findings.get(
                "get_run",
                lambda run_id=run_id: tracking.get_run(run_id),
                tolerate=("RESOURCE_DOES_NOT_EXIST",),
            )
        else:
            findings.get("get_run", lambda run_id=run_id: tracking.get_run(run_id))
            searched = True
    everyone = [findings for _, findings in checks]
    if searched:
        found = tracking.search_runs([world.experiment_id], None, ViewType.ALL)
        ids = [r.info.run_id for r in found]
        for run_id, findings in checks:
            _listed(findings, "search_runs", ids, run_id, healthy)
        healthy_found = [r.to_proto() for r in found if r.info.run_id == healthy]
        _expect_all(everyone, healthy_found == [world.healthy["run"]], "search_runs changed it")
    _expect_all(
        everyone,
        tracking.get_run(healthy).to_proto() == world.healthy["run"],
        "get_run changed the healthy run",
    )
    charted = _history(world, [run_id for run_id, _ in checks] + [healthy])
    _expect_all(
        everyone,
        [p for p in charted if p[0] == healthy] == world.healthy["history"],
        "the healthy run's chart changed",
    )
    bulk = tracking.get_metric_history_bulk(
        [run_id for run_id, _ in checks] + [healthy], "loss", 100
    )
    _expect_all(
        everyone,
        len([p for p in bulk if p.run_id == healthy]) == 5,
        "get_metric_history_bulk lost the healthy run's points",
    )


def _expect_all(everyone: list[Findings], condition: bool, message: str) -> None:
    for findings in everyone:
        findings.expect(condition, message)


def _check_experiments(world: World, findings: Findings) -> None:
    tracking = world.tracking
    if findings.key == world.victim_keys["experiment"]:
        findings.get("get_experiment", lambda: tracking.get_experiment(world.victim_experiment))
        findings.get(
            "set_experiment_tag",
            lambda: tracking.set_experiment_tag(world.victim_experiment, ExperimentTag("p", "1")),
        )
        found = tracking.search_experiments(ViewType.ALL, 1000)
        _listed(
            findings,
            "search_experiments",
            [e.experiment_id for e in found],
            world.victim_experiment,
            world.experiment_id,
        )
    findings.get("get_experiment_by_name", lambda: tracking.get_experiment_by_name("damage-victim"))
    findings.expect(
        tracking.get_experiment_by_name("damage-healthy").to_proto() == world.healthy["experiment"],
        "get_experiment_by_name changed the healthy experiment",
    )


def _check_logged_models(world: World, findings: Findings) -> None:
    tracking, models = world.tracking, world.models
    findings.get("get_logged_model", lambda: tracking.get_logged_model(models["victim"]))
    findings.get(
        "set_logged_model_tags",
        lambda: tracking.set_logged_model_tags(models["victim"], [LoggedModelTag("p", "1")]),
    )
    found = tracking.search_logged_models([world.experiment_id], max_results=100)
    _listed(findings, "search_logged_models", [m.model_id for m in found], *models.values())
    healthy = [m.to_proto() for m in found if m.model_id == models["healthy"]]
    findings.expect(
        healthy == [world.healthy["logged model"]], "search_logged_models changed the healthy model"
    )


def _check_registry(world: World, findings: Findings) -> None:
    registry, names = world.registry, world.registered
    victim, healthy = names["victim"], names["healthy"]
    is_version = findings.key == world.victim_keys["model version"]
    if is_version:
        findings.get("get_model_version", lambda: registry.get_model_version(victim, 1))
        findings.get(
            "set_model_version_tag",
            lambda: registry.set_model_version_tag(victim, 1, ModelVersionTag("p", "1")),
        )
        latest = registry.get_latest_versions(victim)
        findings.expect(
            bool(latest) != findings.damaged, f"get_latest_versions answered {len(latest)} versions"
        )
    else:
        findings.get("get_registered_model", lambda: registry.get_registered_model(victim))
        findings.get(
            "set_registered_model_tag",
            lambda: registry.set_registered_model_tag(victim, RegisteredModelTag("p", "1")),
        )
    models = registry.search_registered_models(max_results=100)
    found = [m.name for m in models]
    if findings.key == world.victim_keys["registered model"]:
        _listed(findings, "search_registered_models", found, victim, healthy)
    else:
        findings.expect({victim, healthy} <= set(found), "search_registered_models lost a model")
    versions = registry.search_model_versions(max_results=1000)
    found = [v.name for v in versions]
    if is_version:
        _listed(findings, "search_model_versions", found, victim, healthy)
    else:
        findings.expect(healthy in found, "search_model_versions lost the healthy version")
    findings.expect(
        registry.get_registered_model(healthy).to_proto() == world.healthy["registered model"],
        "get_registered_model changed the healthy model",
    )
    findings.expect(
        [v.to_proto() for v in registry.get_latest_versions(healthy)]
        == [world.healthy["model version"]],
        "get_latest_versions changed the healthy version",
    )


def _check_format(world: World, findings: Findings) -> None:
    def reopen() -> object:
        store = BucketTrackingStore(world.uri, recover_in_background=False)
        try:
            return store.get_run(world.runs["healthy"]).to_proto()
        finally:
            store.close()

    reread = findings.get("opening the root", reopen)
    if reread is not None:
        findings.expect(reread == world.healthy["run"], "the healthy run changed")
    # A store that opened the root before the damage goes on working.
    findings.expect(
        world.tracking.get_run(world.runs["healthy"]).to_proto() == world.healthy["run"],
        "an open store lost the healthy run",
    )


def _one(check: Callable[[World, Findings], None]) -> Callable[[World, list[Any]], None]:
    def checked(world: World, checks: list[tuple[str, Findings]]) -> None:
        for _, findings in checks:
            check(world, findings)

    return checked


CHECKS: dict[str, Callable[[World, list[tuple[str, Findings]]], None]] = {
    "experiment": _one(_check_experiments),
    "experiment name claim": _one(_check_experiments),
    "run": _check_runs,
    "run location": _check_runs,
    "logged model": _one(_check_logged_models),
    "registered model": _one(_check_registry),
    "model version": _one(_check_registry),
    "registered model name claim": _one(_check_registry),
    "format": _one(_check_format),
}


def is_damaged(key: str, data: bytes) -> bool:
    """The format's verdict on ``data`` stored under ``key`` (the oracle the cases use)."""
    import json

    try:
        doc = json.loads(data)
    except ValueError:  # not UTF-8 or not JSON
        return True
    return bool(document_problems(key, doc))


@dataclass(frozen=True)
class Victim:
    """One object to damage: its id (for run cases), its key and its original bytes."""

    entity: str
    key: str
    original: bytes


def victims_of(world: World, kind: str) -> list[Victim]:
    key = world.victim_keys[kind]
    found = [Victim(world.runs["victim"], key, world.raw.get(key))]
    if kind == "run":
        for run_id in world.more_victims:
            other = keys.run_key(world.experiment_id, run_id)
            found.append(Victim(run_id, other, world.raw.get(other)))
    return found


def run_batch(world: World, kind: str, batch: list[tuple[Victim, DamageCase]]) -> list[str]:
    """Damage each victim with its case, check every reader, put the originals back."""
    checks = []
    for victim, case in batch:
        damaged = case.make(victim.original)
        findings = Findings(f"{kind}:{case.name}", victim.key, is_damaged(victim.key, damaged))
        world.raw.put(victim.key, damaged)
        checks.append((victim.entity, findings))
    try:
        CHECKS[kind](world, checks)
    except Exception as exc:  # any raw exception out of a store method is a finding
        frames = "".join(traceback.format_exception(exc)[-3:])
        for _, findings in checks:
            findings.problems.append(f"raw {type(exc).__name__} escaped: {exc}\n{frames}")
    finally:
        for victim, _ in batch:
            world.raw.put(victim.key, victim.original)
    return [f"{f.case}: {problem}" for _, f in checks for problem in f.problems]


def cases_of(world: World, kind: str) -> tuple[bytes, list[DamageCase]]:
    original = world.raw.get(world.victim_keys[kind])
    return original, damage_cases(original)


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("generated-damage") / "root"
    return _build(f"bucket+file://{folder}?index_staleness=0", FolderRoot(folder))


@pytest.fixture(scope="module")
def bucket_world(moto_s3: S3Endpoint) -> World:
    prefix = f"generated-damage/{uuid.uuid4().hex}"
    bucket = moto_s3.shared_bucket
    uri = f"bucket+s3://{bucket}/{prefix}?endpoint_url={moto_s3.url}&index_staleness=0"
    return _build(uri, BucketRoot(moto_s3.url, bucket, prefix))


def _run_all(world: World, kind: str, backend: str, share: int = 1) -> None:
    victims = victims_of(world, kind)
    per_victim = [damage_cases(victim.original)[::share] for victim in victims]
    names = [[case.name for case in cases] for cases in per_victim]
    assert all(n == names[0] for n in names), "the victims are not of one shape"
    failures: list[str] = []
    chosen = per_victim[0]
    for start in range(0, len(chosen), len(victims)):
        batch = [
            (victim, per_victim[number][start + number])
            for number, victim in enumerate(victims)
            if start + number < len(chosen)
        ]
        failures += run_batch(world, kind, batch)
    RUN_COUNTS[backend] = RUN_COUNTS.get(backend, 0) + len(chosen)
    assert not failures, f"{len(failures)} findings in {len(chosen)} cases:\n" + "\n".join(
        failures[:30]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_generated_damage_bucket_file(kind: str, folder_world: World) -> None:
    _run_all(folder_world, kind, "bucket+file")


@pytest.mark.parametrize("kind", KINDS)
def test_generated_damage_bucket_s3(kind: str, bucket_world: World) -> None:
    _run_all(bucket_world, kind, "bucket+s3 (moto)", MOTO_SHARE)


def test_every_kind_is_damaged_in_every_field(folder_world: World) -> None:
    """The generator covers each kind's schema: each field is missing or mistyped somewhere."""
    for kind in KINDS:
        key = folder_world.victim_keys[kind]
        found = schema_of_key(key)
        assert found is not None and found[0].kind == kind, key
        names = {case.name.split(":")[0] for case in cases_of(folder_world, kind)[1]}
        stored = set(__import__("json").loads(folder_world.raw.get(key)))
        assert stored <= names, f"{kind}: fields never damaged: {stored - names}"


def test_checks_fail_when_damage_is_missed(folder_world: World) -> None:
    """The checks can fail: a sound document reported damaged must give findings."""
    key = folder_world.victim_keys["run"]
    original = folder_world.raw.get(key)
    case = DamageCase("sound_but_called_damaged", lambda data: data)
    findings = Findings("self-test", key, damaged=True)
    folder_world.raw.put(key, case.make(original))
    _check_runs(folder_world, [(folder_world.runs["victim"], findings)])
    assert any("answered for a damaged document" in p for p in findings.problems)
    assert any("listed the damaged object" in p for p in findings.problems)


# -- through a real server -------------------------------------------------------------------------

_API = "/api/2.0/mlflow"
#: The damages the issue saw answered with HTML 500s, and one of each other kind.
SERVER_CASES: dict[str, list[str]] = {
    "run": [
        "user_id:list",
        "run_name:int",
        "start_time:text",
        "model_outputs:object",
        "inputs:text",
        "tags/who:lone_surrogate",
        "latest_metrics/loss/value:text",
        "segments/0/rows:int_beyond_64_bits",
        "truncated_at_0.500",
    ],
    "experiment": ["name:list", "tags:surrogate_name", "not_utf8_lone_ff_0"],
    "logged model": ["status:text", "metrics/0/value:object", "lifecycle_stage:missing"],
    "registered model": ["aliases/champion:text", "name:null"],
    "model version": ["current_stage:int", "tags/k:lone_surrogate"],
}


def _requests(world: World) -> dict[str, tuple[str, str, dict[str, Any]]]:
    runs = [world.runs["victim"], world.runs["healthy"]]
    return {
        "runs/search": ("POST", "runs/search", {"experiment_ids": [world.experiment_id]}),
        "runs/get victim": ("GET", "runs/get", {"run_id": world.runs["victim"]}),
        "runs/get healthy": ("GET", "runs/get", {"run_id": world.runs["healthy"]}),
        "experiments/search": ("POST", "experiments/search", {"max_results": 100}),
        "get-history-bulk-interval": (
            "GET",
            "metrics/get-history-bulk-interval",
            {"run_ids": runs, "metric_key": "loss", "max_results": 10},
        ),
        "logged-models/search": (
            "POST",
            "logged-models/search",
            {"experiment_ids": [world.experiment_id]},
        ),
        "registered-models/search": ("GET", "registered-models/search", {}),
        "model-versions/search": ("GET", "model-versions/search", {}),
    }


def _send(url: str, method: str, path: str, payload: dict[str, Any]) -> requests.Response:
    if method == "GET":
        return requests.get(f"{url}{_API}/{path}", params=payload, timeout=30)
    return requests.post(f"{url}{_API}/{path}", json=payload, timeout=30)


def _healthy_in(name: str, body: dict[str, Any], world: World) -> bool:
    """Whether the answer to request ``name`` still carries the healthy object."""
    text = str(body)
    expected = {
        "runs/search": world.runs["healthy"],
        "runs/get healthy": world.runs["healthy"],
        "experiments/search": "damage-healthy",
        "get-history-bulk-interval": world.runs["healthy"],
        "logged-models/search": world.models["healthy"],
        "registered-models/search": world.registered["healthy"],
        "model-versions/search": world.registered["healthy"],
    }.get(name)
    return expected is None or expected in text


@pytest.fixture(params=["bucket_file", "bucket_s3"])
def served_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, str]]:
    world: World = request.getfixturevalue(
        "folder_world" if request.param == "bucket_file" else "bucket_world"
    )
    workdir = tmp_path_factory.mktemp(f"damage-server-{request.param}")
    plain_uri = world.uri.replace("?index_staleness=0", "").replace("&index_staleness=0", "")
    with mlflow_server(
        plain_uri, workdir=workdir, env={"MLFLOW_BUCKET_INDEX_STALENESS": "0"}
    ) as server:
        yield world, server.url


def test_server_never_answers_html(served_world: tuple[World, str]) -> None:
    world, url = served_world
    backend = (
        "mlflow server, bucket+s3" if "bucket+s3" in world.uri else "mlflow server, bucket+file"
    )
    failures: list[str] = []
    count = 0
    for kind, names in SERVER_CASES.items():
        key = world.victim_keys[kind]
        original, cases = cases_of(world, kind)
        by_name = {case.name: case for case in cases}
        for name in names:
            count += 1
            world.raw.put(key, by_name[name].make(original))
            try:
                for request_name, (method, path, payload) in _requests(world).items():
                    answer = _send(url, method, path, payload)
                    where = f"{kind}:{name}: {request_name} answered {answer.status_code}"
                    try:
                        body = answer.json()
                    except ValueError:
                        failures.append(f"{where} with a body that is not JSON")
                        continue
                    if answer.status_code >= 500:
                        ok = request_name == "runs/get victim" and key in body.get("message", "")
                        if not ok:
                            failures.append(f"{where}: {body}")
                    elif not _healthy_in(request_name, body, world):
                        failures.append(f"{where} without the healthy object")
            finally:
                world.raw.put(key, original)
    RUN_COUNTS[backend] = RUN_COUNTS.get(backend, 0) + count
    assert not failures, "\n".join(failures[:30])
