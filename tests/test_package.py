"""The installed package: entry points, public names, URI parsing."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from importlib.metadata import entry_points
from types import ModuleType
from typing import ParamSpec, TypeVar

import pytest

import mlflow_plugin.objectstore as objectstore
from mlflow_plugin.artifacts import BucketArtifactRepository
from mlflow_plugin.objectstore import InvalidStoreUri
from mlflow_plugin.store_uri import parse_store_uri

SCHEMES = {"bucket+s3", "bucket+file"}


@pytest.mark.parametrize("group", ["mlflow.tracking_store", "mlflow.artifact_repository"])
def test_entry_points_register_both_schemes(group: str) -> None:
    names = {ep.name for ep in entry_points(group=group) if ep.value.startswith("mlflow_plugin.")}
    assert names == SCHEMES


@pytest.mark.parametrize("uri", ["bucket+s3://bucket/prefix", "bucket+file:///tmp/bucket-root"])
def test_mlflow_resolves_our_artifact_repository(uri: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    assert isinstance(get_artifact_repository(uri), BucketArtifactRepository)


def test_objectstore_public_names_are_pinned() -> None:
    assert sorted(objectstore.__all__) == sorted(
        [
            "ADDRESSING_OPTIONS", "SCHEMES", "AccessDenied", "AlreadyExists", "Backoff",
            "ConditionalWritesUnsupported", "DirectoryListing", "InvalidKey", "InvalidStoreUri",
            "LocalObjectStore", "MemoryObjectStore", "NotFound", "ObjectInfo", "ObjectStore",
            "ObjectStoreError", "PreconditionFailed", "StorageUnavailable", "StoreLocation",
            "StoredObject", "check_conditional_writes", "check_conditional_writes_once",
            "check_folder_prefix", "check_key", "check_prefix", "open_object_store",
            "parse_store_uri",
        ]
    )  # fmt: skip


def test_s3_uri_parts_and_round_trip() -> None:
    location = parse_store_uri(
        "bucket+s3://my-bucket/team/proj?region=eu-west-1&endpoint_url=http://h:9000"
    )
    assert (location.bucket, location.prefix) == ("my-bucket", "team/proj")
    assert location.endpoint_url() == "http://h:9000"
    assert location.region() == "eu-west-1"
    assert parse_store_uri(location.to_uri()) == location
    assert location.join("artifacts", "7").prefix == "team/proj/artifacts/7"


def test_relative_file_uri_becomes_absolute(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    assert parse_store_uri("bucket+file:./mlruns-bucket").path == f"{tmp_path}/mlruns-bucket"
    assert parse_store_uri("bucket+file:///abs/path").path == "/abs/path"


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://aws-generic")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://aws-generic"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://aws-s3")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://aws-s3"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://mlflow-s3")
    assert parse_store_uri("bucket+s3://bucket").endpoint_url() == "http://mlflow-s3"
    assert parse_store_uri("bucket+s3://bucket?endpoint_url=http://q").endpoint_url() == "http://q"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/prefix",
        "bucket+gs://bucket",
        "bucket+s3://",
        "bucket+s3://x",
        "bucket+s3://bucket/../up",
        "bucket+s3://bucket/p?aws_secret_access_key=hunter2",
        "bucket+s3://bucket/p?session_token=hunter2",
        "bucket+s3://key:hunter2@bucket/p",
        "bucket+s3://bucket/p?region=a&region=b",
        "bucket+s3://bucket/p?unknown=1",
        "bucket+s3://bucket/p#frag",
        "bucket+file://remote-host/path",
        "bucket+file:",
    ],
)
def test_bad_uris_are_refused_without_echoing_secrets(uri: str) -> None:
    with pytest.raises(InvalidStoreUri) as raised:
        parse_store_uri(uri)
    assert "hunter2" not in str(raised.value)


# -- the pinned surface: every module's __all__, every error class in the drawn tree ----


def _modules() -> list[ModuleType]:
    import mlflow_plugin

    names = [mlflow_plugin.__name__] + [
        info.name
        for info in pkgutil.walk_packages(mlflow_plugin.__path__, f"{mlflow_plugin.__name__}.")
        if not info.name.endswith("__main__")  # running it starts the command line
    ]
    return [importlib.import_module(name) for name in names]


def _bound_at_top(module: ModuleType) -> set[str]:
    """Names a module's own top-level statements define (imports excluded)."""
    bound: set[str] = set()
    statements = list(ast.parse(inspect.getsource(module)).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
        elif isinstance(node, ast.If | ast.Try):  # definitions made conditionally count too
            statements += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
    return bound


def _defined_public(module: ModuleType) -> set[str]:
    """Public names of ``vars(module)`` that the module defines (not imports)."""
    bound = _bound_at_top(module)
    return {
        name
        for name, value in vars(module).items()
        if name in bound
        and not name.startswith("_")
        # Type variables are typing machinery, not part of what a module offers.
        and not isinstance(value, TypeVar | ParamSpec)
    }


@pytest.mark.parametrize("module", _modules(), ids=lambda module: module.__name__)
def test_all_lists_exactly_what_the_module_defines(module: ModuleType) -> None:
    exported = list(getattr(module, "__all__", []))  # none: the module has no public names
    assert len(set(exported)) == len(exported), f"{module.__name__}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
    unlisted = sorted(_defined_public(module) - set(exported))
    assert not unlisted, f"{module.__name__} defines public names outside __all__: {unlisted}"


def _error_classes() -> list[type[BaseException]]:
    found = {
        value
        for module in _modules()
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__.startswith("mlflow_plugin")
        and not value.__name__.startswith("_")
    }
    return sorted(found, key=lambda cls: cls.__name__)


def _parent(cls: type[BaseException]) -> str:
    """The nearest base defined in the package, else the builtin it derives from."""
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("mlflow_plugin") and not base.__name__.startswith("_"):
            return base.__name__
    return cls.__bases__[0].__name__


def _drawn_edges() -> set[tuple[str, str]]:
    """(class, parent) pairs of the tree drawn in ``objectstore/errors.py``'s docstring."""
    from mlflow_plugin.objectstore import errors

    edges = set()
    stack: list[tuple[int, str]] = []  # (column of the name, name) of the open branches
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^    ([\s|+-]*)([A-Z][A-Za-z]+)\b", line)
        if not match:
            continue
        column = len(match.group(1))
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            edges.add((match.group(2), stack[-1][1]))
        stack.append((column, match.group(2)))
    return edges


def _draw(edges: set[tuple[str, str]]) -> str:
    children: dict[str, list[str]] = {}
    for name, parent in edges:
        children.setdefault(parent, []).append(name)
    roots = sorted(set(children) - {name for name, _ in edges})

    def lines(name: str, depth: int) -> list[str]:
        own = [("  " * depth) + ("+-- " if depth else "") + name]
        return own + [
            line for child in sorted(children.get(name, [])) for line in lines(child, depth + 1)
        ]

    return "\n".join(line for root in roots for line in lines(root, 0))


def test_every_error_class_is_in_the_one_drawn_tree() -> None:
    # The drawing starts at ObjectStoreError, whose own base (Exception) it leaves out.
    actual = {(cls.__name__, _parent(cls)) for cls in _error_classes()} - {
        ("ObjectStoreError", "Exception")
    }
    drawn = _drawn_edges()
    assert actual == drawn, (
        "the error classes and the tree drawn in mlflow_plugin/objectstore/errors.py differ;\n"
        f"the classes form:\n{_draw(actual)}\n\nthe drawing says:\n{_draw(drawn)}"
    )


def test_storage_errors_derive_from_object_store_error() -> None:
    from mlflow_plugin.objectstore import ObjectStoreError

    outside = [
        cls.__name__
        for cls in _error_classes()
        if cls.__module__.startswith(("mlflow_plugin.objectstore", "mlflow_plugin.format"))
        and not issubclass(cls, ObjectStoreError)
    ]
    assert outside == []


@pytest.mark.parametrize("root", ["bucket+s3://bucket/team", "bucket+file:///tmp/never-created"])
@pytest.mark.parametrize("entry_point", ["tracking", "registry", "artifacts"])
def test_every_entry_point_refuses_an_option_no_layer_reads(root: str, entry_point: str) -> None:
    from mlflow.exceptions import MlflowException

    from mlflow_plugin.registry.store import BucketRegistryStore
    from mlflow_plugin.tracking.store import BucketTrackingStore

    build = {
        "tracking": BucketTrackingStore,
        "registry": BucketRegistryStore,
        "artifacts": BucketArtifactRepository,
    }[entry_point]
    with pytest.raises(MlflowException, match="unknown store URI option 'flush_intervall'"):
        build(f"{root}?flush_intervall=3")


def test_the_object_store_layer_keeps_options_it_does_not_read() -> None:
    location = objectstore.parse_store_uri("bucket+s3://bucket/p?flush_interval=3&region=x")
    assert location.option("flush_interval") == "3"
    assert location.region() == "x"
