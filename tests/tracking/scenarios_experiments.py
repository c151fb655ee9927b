"""Differential scenarios: experiments (create, get, rename, delete, tags, search)."""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient
from mlflow.entities import ViewType

from tests.tracking.harness import all_pages, attempt, scenario, slug


def _create(client: MlflowClient, *names: str) -> list[str]:
    return [client.create_experiment(name) for name in names]


def _names(experiments: object) -> list[str]:
    return [e.name for e in experiments]  # type: ignore[attr-defined]


@scenario
def experiment_default_exists(client: MlflowClient) -> object:
    return {
        "by_id": client.get_experiment("0"),
        "by_name": client.get_experiment_by_name("Default"),
    }


@scenario
def experiment_create_and_get(client: MlflowClient) -> object:
    exp_id = client.create_experiment("alpha", tags={"team": "vision", "empty": ""})
    return {
        "experiment_id": exp_id,
        "by_id": client.get_experiment(exp_id),
        "by_name": client.get_experiment_by_name("alpha"),
    }


@scenario
def experiment_get_by_name_missing(client: MlflowClient) -> object:
    client.create_experiment("present")
    return {
        "missing": client.get_experiment_by_name("absent"),
        "case_differs": client.get_experiment_by_name("PRESENT"),
    }


@scenario
def experiment_get_unknown_id(client: MlflowClient) -> object:
    return {
        "numeric": attempt(client.get_experiment, "987654"),
        "text": attempt(client.get_experiment, "no-such-experiment"),
    }


@scenario
def experiment_duplicate_name(client: MlflowClient) -> object:
    exp_id = client.create_experiment("twice")
    return {
        "experiment_id": exp_id,
        "second": attempt(client.create_experiment, "twice"),
        "all": client.search_experiments(order_by=["name ASC"]),
    }


@scenario
def experiment_invalid_names(client: MlflowClient) -> object:
    return {
        "empty": attempt(client.create_experiment, ""),
        "none": attempt(client.create_experiment, None),
        "not_a_string": attempt(client.create_experiment, 12),
        "after": client.search_experiments(order_by=["name ASC"]),
    }


@scenario
def experiment_long_and_unusual_names(client: MlflowClient) -> object:
    names = ["x" * 256, "with space", "slash/in/name", "dots.and-dashes", "ünïcödé", "a'quote"]
    created = {name[:20]: attempt(client.create_experiment, name) for name in names}
    return {
        "created": {k: isinstance(v, str) for k, v in created.items()},
        "found": _names(client.search_experiments(order_by=["name ASC"])),
    }


@scenario
def experiment_name_too_long(client: MlflowClient) -> object:
    created = attempt(client.create_experiment, "y" * 1000)
    return {
        "created": isinstance(created, str),
        "error": None if isinstance(created, str) else created,
    }


@scenario
def experiment_rename(client: MlflowClient) -> object:
    exp_id = client.create_experiment("before")
    client.rename_experiment(exp_id, "after")
    return {
        "experiment_id": exp_id,
        "get": client.get_experiment(exp_id),
        "old_name": client.get_experiment_by_name("before"),
        "new_name": client.get_experiment_by_name("after"),
        "reuse_old_name": isinstance(attempt(client.create_experiment, "before"), str),
    }


@scenario
def experiment_rename_to_existing(client: MlflowClient) -> object:
    first, second = _create(client, "first", "second")
    return {
        "experiment_ids": [first, second],
        "rename": attempt(client.rename_experiment, second, "first"),
        "after": client.search_experiments(order_by=["name ASC"]),
    }


@scenario
def experiment_rename_invalid(client: MlflowClient) -> object:
    exp_id = client.create_experiment("named")
    return {
        "experiment_id": exp_id,
        "empty": attempt(client.rename_experiment, exp_id, ""),
        "unknown": attempt(client.rename_experiment, "987654", "other"),
        "after": client.get_experiment(exp_id),
    }


@scenario
def experiment_rename_deleted(client: MlflowClient) -> object:
    exp_id = client.create_experiment("gone")
    client.delete_experiment(exp_id)
    return {
        "experiment_id": exp_id,
        "rename": attempt(client.rename_experiment, exp_id, "revived"),
        "after": client.get_experiment(exp_id),
    }


@scenario
def experiment_delete_and_restore(client: MlflowClient) -> object:
    exp_id = client.create_experiment("cycle")
    client.delete_experiment(exp_id)
    deleted = client.get_experiment(exp_id)
    by_name_deleted = client.get_experiment_by_name("cycle")
    active_while_deleted = _names(client.search_experiments())
    client.restore_experiment(exp_id)
    return {
        "experiment_id": exp_id,
        "deleted": deleted,
        "by_name_deleted": by_name_deleted,
        "active_while_deleted": active_while_deleted,
        "restored": client.get_experiment(exp_id),
        "active_after": _names(client.search_experiments()),
    }


@scenario
def experiment_delete_twice_and_restore_active(client: MlflowClient) -> object:
    exp_id = client.create_experiment("once")
    return {
        "experiment_id": exp_id,
        "restore_active": attempt(client.restore_experiment, exp_id),
        "delete": attempt(client.delete_experiment, exp_id),
        "delete_again": attempt(client.delete_experiment, exp_id),
        "after": client.get_experiment(exp_id),
    }


@scenario
def experiment_delete_unknown(client: MlflowClient) -> object:
    return {
        "delete": attempt(client.delete_experiment, "987654"),
        "restore": attempt(client.restore_experiment, "987654"),
    }


@scenario
def experiment_delete_default(client: MlflowClient) -> object:
    return {
        "delete": attempt(client.delete_experiment, "0"),
        "after": client.get_experiment("0"),
    }


@scenario
def experiment_name_of_deleted_is_taken(client: MlflowClient) -> object:
    exp_id = client.create_experiment("reserved")
    client.delete_experiment(exp_id)
    return {
        "experiment_id": exp_id,
        "create_again": attempt(client.create_experiment, "reserved"),
    }


@scenario
def experiment_tags_set_and_delete(client: MlflowClient) -> object:
    exp_id = client.create_experiment("tagged", tags={"a": "1", "b": "2"})
    client.set_experiment_tag(exp_id, "a", "overwritten")
    client.set_experiment_tag(exp_id, "c", "3")
    client.delete_experiment_tag(exp_id, "b")
    return {
        "experiment_id": exp_id,
        "after": client.get_experiment(exp_id),
        "delete_missing": attempt(client.delete_experiment_tag, exp_id, "never-set"),
        "unknown_experiment": attempt(client.set_experiment_tag, "987654", "k", "v"),
    }


@scenario
def experiment_tags_invalid(client: MlflowClient) -> object:
    exp_id = client.create_experiment("tag-checks")
    return {
        "experiment_id": exp_id,
        "bad_key": attempt(client.set_experiment_tag, exp_id, "../up", "v"),
        "long_key": attempt(client.set_experiment_tag, exp_id, "k" * 300, "v"),
        "long_value": attempt(client.set_experiment_tag, exp_id, "k", "v" * 6000),
        "after": client.get_experiment(exp_id),
    }


@scenario
def experiment_tag_on_deleted(client: MlflowClient) -> object:
    exp_id = client.create_experiment("deleted-tags")
    client.delete_experiment(exp_id)
    return {
        "experiment_id": exp_id,
        "set": attempt(client.set_experiment_tag, exp_id, "k", "v"),
    }


# --- artifact locations ----------------------------------------------------------------

# Given locations, by label: MLflow's SQL store makes a relative local path or ``file:``
# URI absolute against the current directory and keeps every other scheme as given.
_ARTIFACT_LOCATIONS: dict[str, str | None] = {
    "relative": "relative/path",
    "dot_relative": "./x",
    "parent_relative": "../up/x",
    "percent_escape": "with%20space",
    "absolute": "/abs/artifacts",
    "file_relative": "file:relative",
    "file_dot_relative": "file:./rel",
    "file_relative_query": "file:rel?x=1",
    "file_absolute": "file:///abs/artifacts",
    "file_localhost": "file://localhost/abs",
    "file_remote_host": "file://remote-host/x",
    "s3": "s3://b/p",
    "mlflow_artifacts": "mlflow-artifacts:/x",
    "bucket_file_relative": "bucket+file:./x",
    "bucket_file_absolute": "bucket+file:///abs/artifacts",
    "bucket_s3": "bucket+s3://b/p",
    "empty": "",
    "none": None,
}


def _parent_and_leaf(uri: str) -> tuple[str, str]:
    """``("s3://b/root?q=1", "7")`` for ``"s3://b/root/7?q=1"``: a query stays with the parent."""
    parts = urlsplit(uri)
    parent, _, leaf = parts.path.rpartition("/")
    return urlunsplit(parts._replace(path=parent)), leaf


def _artifact_location_case(label: str, given: str | None) -> None:
    def run(client: MlflowClient) -> object:
        # Each store has its own default root: an experiment made with no location shows it.
        plain = client.get_experiment(client.create_experiment("default-location"))
        default_root = _parent_and_leaf(plain.artifact_location)[0]
        created = attempt(client.create_experiment, f"located-{label}", given)
        if not isinstance(created, str):
            return {"create": created, "after": _names(client.search_experiments())}
        cwd = os.getcwd()  # each store runs in its own temporary folder

        def shown(location: str) -> str:
            if _parent_and_leaf(location) == (default_root, created):
                return "<default>"
            return location.replace(cwd, "<cwd>")

        by_id = client.get_experiment(created)
        by_name = client.get_experiment_by_name(f"located-{label}")
        [searched] = client.search_experiments(filter_string=f"name = 'located-{label}'")
        return {
            "experiment_id": created,
            "by_id": shown(by_id.artifact_location),
            "by_name": shown(by_name.artifact_location) if by_name else None,
            "search": shown(searched.artifact_location),
        }

    run.__name__ = f"experiment_artifact_location_{label}"
    scenario(run)


for _label, _given in _ARTIFACT_LOCATIONS.items():
    _artifact_location_case(_label, _given)


# --- search_experiments ----------------------------------------------------------------


def _search_fixture(client: MlflowClient) -> list[str]:
    ids = [
        client.create_experiment("alpha", tags={"team": "vision", "stage": "dev"}),
        client.create_experiment("Beta", tags={"team": "nlp"}),
        client.create_experiment("gamma", tags={"team": "vision", "stage": "prod"}),
        client.create_experiment("alphabet"),
        client.create_experiment("delta_%"),
    ]
    client.delete_experiment(client.create_experiment("alpha-deleted", tags={"team": "vision"}))
    return ids


def _search_case(filter_string: str, order_by: list[str] | None = None) -> None:
    order = order_by or ["name ASC"]

    def run(client: MlflowClient) -> object:
        ids = _search_fixture(client)
        found = attempt(
            client.search_experiments,
            view_type=ViewType.ALL,
            filter_string=filter_string,
            order_by=order,
        )
        if isinstance(found, list) and found[:1] == ["error"]:
            return {"experiment_ids": ids, "found": found}
        return {"experiment_ids": ids, "found": _names(found)}

    run.__name__ = f"experiment_search_{slug(filter_string)}"
    scenario(run)


for _filter in [
    "name = 'alpha'",
    "name != 'alpha'",
    "name LIKE 'alpha%'",
    "name LIKE 'ALPHA%'",
    "name ILIKE 'ALPHA%'",
    "name LIKE '%a'",
    "name LIKE 'delta\\_%'",
    "attributes.name = 'Beta'",
    "tags.team = 'vision'",
    "tags.team != 'vision'",
    "tags.team LIKE 'v%'",
    "tags.team ILIKE 'V%'",
    "tags.stage = 'dev' AND tags.team = 'vision'",
    "tags.`team` = 'nlp'",
    "name LIKE 'a%' AND tags.team = 'vision'",
    "creation_time > 0",
    "last_update_time >= 0",
    "tags.team IS NULL",
    "name IN ('alpha', 'gamma')",
    "name = alpha",
    "name > 'a'",
    "nosuchattr = 'x'",
    "metrics.m > 1",
    "name = 'alpha' OR name = 'gamma'",
    "name =",
]:
    _search_case(_filter)


@scenario
def experiment_search_order_by_name(client: MlflowClient) -> object:
    ids = _search_fixture(client)
    return {
        "experiment_ids": ids,
        "asc": _names(client.search_experiments(order_by=["name ASC"])),
        "desc": _names(client.search_experiments(order_by=["name DESC"])),
        "implicit_asc": _names(client.search_experiments(order_by=["name"])),
    }


@scenario
def experiment_search_order_by_id(client: MlflowClient) -> object:
    ids = _search_fixture(client)
    return {
        "experiment_ids": ids,
        "asc": {
            "experiment_ids": [
                e.experiment_id for e in client.search_experiments(order_by=["experiment_id"])
            ]
        },
        "desc": {
            "experiment_ids": [
                e.experiment_id for e in client.search_experiments(order_by=["experiment_id DESC"])
            ]
        },
    }


@scenario
def experiment_search_default_order(client: MlflowClient) -> object:
    ids = []
    for name in ("one", "two", "three"):
        ids.append(client.create_experiment(name))
        time.sleep(0.01)  # distinct creation times: the default order is creation_time DESC
    return {"experiment_ids": ids, "found": client.search_experiments()}


@scenario
def experiment_search_bad_order_by(client: MlflowClient) -> object:
    _search_fixture(client)
    return {
        "unknown_key": attempt(client.search_experiments, order_by=["nosuch ASC"]),
        "bad_direction": attempt(client.search_experiments, order_by=["name UP"]),
        "tag_key": attempt(client.search_experiments, order_by=["tags.team ASC"]),
    }


@scenario
def experiment_search_view_types(client: MlflowClient) -> object:
    ids = _search_fixture(client)
    return {
        "experiment_ids": ids,
        "active": _names(client.search_experiments(ViewType.ACTIVE_ONLY, order_by=["name"])),
        "deleted": _names(client.search_experiments(ViewType.DELETED_ONLY, order_by=["name"])),
        "all": _names(client.search_experiments(ViewType.ALL, order_by=["name"])),
    }


@scenario
def experiment_search_pagination(client: MlflowClient) -> object:
    ids = _search_fixture(client)
    return {
        "experiment_ids": ids,
        "pages_of_2": all_pages(
            lambda token: client.search_experiments(
                max_results=2, order_by=["name DESC"], page_token=token
            )
        ),
        "pages_of_6": all_pages(
            lambda token: client.search_experiments(
                max_results=6, order_by=["name ASC"], page_token=token
            )
        ),
        "filtered_pages": all_pages(
            lambda token: client.search_experiments(
                max_results=1,
                filter_string="tags.team = 'vision'",
                view_type=ViewType.ALL,
                order_by=["name ASC"],
                page_token=token,
            )
        ),
    }


@scenario
def experiment_search_bad_paging(client: MlflowClient) -> object:
    _search_fixture(client)
    return {
        "zero": attempt(client.search_experiments, max_results=0),
        "huge": attempt(client.search_experiments, max_results=1_000_000),
        "bad_token": attempt(client.search_experiments, page_token="not-a-token"),
    }
