"""Registry scenarios for the differential suite (see ``harness``): each returns observations."""

from __future__ import annotations

from mlflow import MlflowClient

from tests.registry.harness import all_pages, attempt, scenario

RUN_A = "a" * 32
RUN_B = "b" * 32
SOURCE = "s3://models-bucket/path/model"


def _model_with_versions(client: MlflowClient, name: str, count: int, **kwargs: object) -> None:
    client.create_registered_model(name, **kwargs)  # type: ignore[arg-type]
    for i in range(count):
        client.create_model_version(name, f"{SOURCE}/{i + 1}", run_id=RUN_A if i % 2 else RUN_B)


# -- registered models ----------------------------------------------------------------------


@scenario
def create_and_get_model(client: MlflowClient) -> object:
    created = attempt(client.create_registered_model, "m", tags={"team": "vision"}, description="d")
    return {"created": created, "read": attempt(client.get_registered_model, "m")}


@scenario
def create_model_without_tags_or_description(client: MlflowClient) -> object:
    return attempt(client.create_registered_model, "plain")


@scenario
def create_duplicate_model(client: MlflowClient) -> object:
    client.create_registered_model("dup")
    return {
        "again": attempt(client.create_registered_model, "dup"),
        "other_case": attempt(client.create_registered_model, "DUP"),
    }


@scenario
def create_model_bad_names(client: MlflowClient) -> object:
    return [
        attempt(client.create_registered_model, name)
        for name in ["", "   ", "a/b", "a:b", "../up", "x" * 300]
    ]


@scenario
def model_names_with_unicode_and_spaces(client: MlflowClient) -> object:
    names = ["modèle ünïcode", "with space", "dots.and-dashes_1"]
    created = [attempt(client.create_registered_model, n) for n in names]
    return {"created": created, "read": [attempt(client.get_registered_model, n) for n in names]}


@scenario
def get_missing_model(client: MlflowClient) -> object:
    return [attempt(client.get_registered_model, "nope"), attempt(client.get_registered_model, "")]


@scenario
def update_model_description(client: MlflowClient) -> object:
    client.create_registered_model("m", description="old")
    return {
        "updated": attempt(client.update_registered_model, "m", description="new"),
        "cleared": attempt(client.update_registered_model, "m", description=""),
        "read": attempt(client.get_registered_model, "m"),
        "missing": attempt(client.update_registered_model, "nope", description="x"),
    }


@scenario
def rename_model(client: MlflowClient) -> object:
    _model_with_versions(client, "before", 2, tags={"k": "v"})
    client.set_registered_model_alias("before", "champion", 2)
    return {
        "renamed": attempt(client.rename_registered_model, "before", "after"),
        "old": attempt(client.get_registered_model, "before"),
        "new": attempt(client.get_registered_model, "after"),
        "version": attempt(client.get_model_version, "after", 2),
        "by_alias": attempt(client.get_model_version_by_alias, "after", "champion"),
        "old_version": attempt(client.get_model_version, "before", 1),
        "recreate_old": attempt(client.create_registered_model, "before"),
    }


@scenario
def rename_model_conflicts(client: MlflowClient) -> object:
    client.create_registered_model("one")
    client.create_registered_model("two")
    return {
        "to_existing": attempt(client.rename_registered_model, "one", "two"),
        "missing": attempt(client.rename_registered_model, "nope", "three"),
        "bad_new_names": [
            attempt(client.rename_registered_model, "one", bad) for bad in ["", "x/y", "x:y"]
        ],
        "still": [attempt(client.get_registered_model, n) for n in ("one", "two")],
    }


@scenario
def rename_model_back_and_forth(client: MlflowClient) -> object:
    _model_with_versions(client, "a", 1)
    client.rename_registered_model("a", "b")
    client.rename_registered_model("b", "a")
    version = client.create_model_version("a", SOURCE)
    return {"model": attempt(client.get_registered_model, "a"), "new_version": version.version}


@scenario
def delete_model(client: MlflowClient) -> object:
    _model_with_versions(client, "gone", 2)
    client.set_registered_model_alias("gone", "x", 1)
    deleted = attempt(client.delete_registered_model, "gone")
    return {
        "deleted": deleted,
        "get": attempt(client.get_registered_model, "gone"),
        "version": attempt(client.get_model_version, "gone", 1),
        "search": attempt(client.search_model_versions, "name = 'gone'"),
        "again": attempt(client.delete_registered_model, "gone"),
    }


@scenario
def recreate_deleted_model_restarts_versions(client: MlflowClient) -> object:
    _model_with_versions(client, "phoenix", 3)
    client.delete_registered_model("phoenix")
    recreated = attempt(client.create_registered_model, "phoenix")
    first = attempt(client.create_model_version, "phoenix", SOURCE)
    return {"recreated": recreated, "first": first}


@scenario
def model_tags(client: MlflowClient) -> object:
    client.create_registered_model("m", tags={"a": "1", "b": "2"})
    client.set_registered_model_tag("m", "a", "one")
    client.set_registered_model_tag("m", "c", 3)
    client.delete_registered_model_tag("m", "b")
    missing_key = attempt(client.delete_registered_model_tag, "m", "never-set")
    return {"missing_key": missing_key, "model": attempt(client.get_registered_model, "m")}


@scenario
def model_tags_errors(client: MlflowClient) -> object:
    client.create_registered_model("m")
    return {
        "set_on_missing": attempt(client.set_registered_model_tag, "nope", "k", "v"),
        "delete_on_missing": attempt(client.delete_registered_model_tag, "nope", "k"),
        "empty_key": attempt(client.set_registered_model_tag, "m", "", "v"),
        "long_key": attempt(client.set_registered_model_tag, "m", "k" * 300, "v"),
        "create_with_bad_tag": attempt(client.create_registered_model, "m2", tags={"": "v"}),
        "m2": attempt(client.get_registered_model, "m2"),
    }


# -- model versions -----------------------------------------------------------------------------


@scenario
def create_versions_numbering(client: MlflowClient) -> object:
    client.create_registered_model("m")
    created = [
        attempt(
            client.create_model_version,
            "m",
            f"{SOURCE}/{i}",
            run_id=RUN_A,
            tags={"i": str(i)},
            run_link=f"http://link/{i}",
            description=f"version {i}",
        )
        for i in range(3)
    ]
    return {"created": created, "model": attempt(client.get_registered_model, "m")}


@scenario
def create_version_errors(client: MlflowClient) -> object:
    client.create_registered_model("m")
    return {
        "missing_model": attempt(client.create_model_version, "nope", SOURCE),
        "bad_name": attempt(client.create_model_version, "a/b", SOURCE),
        "bad_tag": attempt(client.create_model_version, "m", SOURCE, tags={"": "x"}),
        "versions": attempt(client.search_model_versions, "name = 'm'"),
    }


@scenario
def get_version_errors(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 1)
    return [
        attempt(client.get_model_version, "m", v) for v in ["1", 1, "2", "0", "-1", "abc", "1.5"]
    ] + [attempt(client.get_model_version, "nope", 1)]


@scenario
def update_version_description(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    return {
        "updated": attempt(client.update_model_version, "m", 2, description="better"),
        "read": attempt(client.get_model_version, "m", 2),
        "missing": attempt(client.update_model_version, "m", 7, description="x"),
    }


@scenario
def transition_stages(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 3)
    moves = [
        attempt(client.transition_model_version_stage, "m", 1, "Staging"),
        attempt(client.transition_model_version_stage, "m", 2, "production"),
        attempt(client.transition_model_version_stage, "m", 3, "ARCHIVED"),
        attempt(client.transition_model_version_stage, "m", 3, "None"),
    ]
    return {"moves": moves, "model": attempt(client.get_registered_model, "m")}


@scenario
def transition_archive_existing(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 4)
    client.transition_model_version_stage("m", 1, "Production")
    client.transition_model_version_stage("m", 2, "Production")
    client.transition_model_version_stage("m", 3, "Staging")
    moved = attempt(client.transition_model_version_stage, "m", 4, "Production", True)
    versions = [attempt(client.get_model_version, "m", v) for v in (1, 2, 3, 4)]
    return {"moved": moved, "versions": versions}


@scenario
def transition_errors(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    return {
        "bad_stage": attempt(client.transition_model_version_stage, "m", 1, "Heaven"),
        "archive_from_none": attempt(client.transition_model_version_stage, "m", 1, "None", True),
        "archive_to_archived": attempt(
            client.transition_model_version_stage, "m", 1, "Archived", True
        ),
        "missing_version": attempt(client.transition_model_version_stage, "m", 9, "Staging"),
        "missing_model": attempt(client.transition_model_version_stage, "nope", 1, "Staging"),
        "unchanged": [attempt(client.get_model_version, "m", v) for v in (1, 2)],
    }


@scenario
def delete_version(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 3)
    deleted = attempt(client.delete_model_version, "m", 2)
    return {
        "deleted": deleted,
        "get": attempt(client.get_model_version, "m", 2),
        "again": attempt(client.delete_model_version, "m", 2),
        "next": attempt(client.create_model_version, "m", SOURCE),
        "search": attempt(client.search_model_versions, "name = 'm'", order_by=["version_number"]),
        "latest": attempt(client.get_latest_versions, "m"),
        "tag_deleted": attempt(client.set_model_version_tag, "m", 2, "k", "v"),
    }


@scenario
def delete_latest_version_then_create(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    client.delete_model_version("m", 2)
    return attempt(client.create_model_version, "m", SOURCE)


@scenario
def delete_version_errors(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 1)
    return [
        attempt(client.delete_model_version, "m", 5),
        attempt(client.delete_model_version, "nope", 1),
        attempt(client.delete_model_version, "m", "abc"),
    ]


@scenario
def latest_versions_by_stage(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 5)
    client.transition_model_version_stage("m", 1, "Production")
    client.transition_model_version_stage("m", 2, "Staging")
    client.transition_model_version_stage("m", 3, "Production")
    client.transition_model_version_stage("m", 4, "Archived")

    def latest(stages: list[str] | None) -> object:
        result = client.get_latest_versions("m", stages)
        return sorted((mv.version, mv.current_stage) for mv in result)

    return {
        "all": attempt(latest, None),
        "empty": attempt(latest, []),
        "production": attempt(latest, ["production"]),
        "two": attempt(latest, ["Staging", "None"]),
        "bad": attempt(latest, ["Heaven"]),
        "missing_model": attempt(client.get_latest_versions, "nope"),
    }


@scenario
def version_tags(client: MlflowClient) -> object:
    client.create_registered_model("m")
    client.create_model_version("m", SOURCE, tags={"a": "1", "b": "2"})
    client.set_model_version_tag("m", "1", "a", "one")
    client.set_model_version_tag("m", 1, "c", 3)
    client.delete_model_version_tag("m", 1, "b")
    return {
        "delete_missing_key": attempt(client.delete_model_version_tag, "m", 1, "zzz"),
        "version": attempt(client.get_model_version, "m", 1),
        "missing_version": attempt(client.set_model_version_tag, "m", 4, "k", "v"),
        "missing_model": attempt(client.delete_model_version_tag, "nope", 1, "k"),
        "empty_key": attempt(client.set_model_version_tag, "m", 1, "", "v"),
        "bad_version": attempt(client.set_model_version_tag, "m", "x", "k", "v"),
    }


@scenario
def download_uri(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    return [
        attempt(client.get_model_version_download_uri, "m", 2),
        attempt(client.get_model_version_download_uri, "m", 3),
        attempt(client.get_model_version_download_uri, "nope", 1),
    ]


@scenario
def version_from_registered_version_source(client: MlflowClient) -> object:
    _model_with_versions(client, "src", 2)
    client.create_registered_model("copy")
    made = attempt(client.create_model_version, "copy", "models:/src/2")
    return {
        "made": made,
        "download": attempt(client.get_model_version_download_uri, "copy", 1),
        "bad_source": attempt(client.create_model_version, "copy", "models:/src/9"),
    }


@scenario
def copy_model_version(client: MlflowClient) -> object:
    _model_with_versions(client, "src", 1)
    client.set_model_version_tag("src", 1, "quality", "high")
    copied = attempt(client.copy_model_version, "models:/src/1", "dst")
    return {"copied": copied, "dst": attempt(client.get_registered_model, "dst")}


@scenario
def version_from_logged_model(client: MlflowClient) -> object:
    run = client.create_run("0")
    logged = client.create_logged_model("0", name="net", source_run_id=run.info.run_id)
    client.create_registered_model("m")
    made = client.create_model_version("m", f"models:/{logged.model_id}", model_id=logged.model_id)
    return {
        "source_is_logged_model": made.source == f"models:/{logged.model_id}",
        "run_id_resolved": made.run_id == run.info.run_id,
        "download_is_artifact_location": (
            client.get_model_version_download_uri("m", made.version) == logged.artifact_location
        ),
        "missing_logged_model": attempt(client.create_model_version, "m", "models:/m-0000"),
    }


# -- aliases --------------------------------------------------------------------------------------


@scenario
def set_and_get_alias(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    client.set_registered_model_alias("m", "champion", 1)
    client.set_registered_model_alias("m", "challenger", "2")
    return {
        "champion": attempt(client.get_model_version_by_alias, "m", "champion"),
        "challenger": attempt(client.get_model_version_by_alias, "m", "challenger"),
        "model": attempt(client.get_registered_model, "m"),
        "version1": attempt(client.get_model_version, "m", 1),
        "latest_versions": attempt(client.get_latest_versions, "m"),
    }


@scenario
def move_alias(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 3)
    client.set_registered_model_alias("m", "champion", 1)
    client.set_registered_model_alias("m", "champion", 3)
    client.set_registered_model_alias("m", "other", 3)
    return {
        "by_alias": attempt(client.get_model_version_by_alias, "m", "champion"),
        "v1": attempt(client.get_model_version, "m", 1),
        "v3": attempt(client.get_model_version, "m", 3),
    }


@scenario
def delete_alias(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 1)
    client.set_registered_model_alias("m", "champion", 1)
    return {
        "deleted": attempt(client.delete_registered_model_alias, "m", "champion"),
        "again": attempt(client.delete_registered_model_alias, "m", "champion"),
        "get": attempt(client.get_model_version_by_alias, "m", "champion"),
        "missing_model": attempt(client.delete_registered_model_alias, "nope", "champion"),
        "model": attempt(client.get_registered_model, "m"),
    }


@scenario
def alias_errors(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 1)
    return {
        "missing_version": attempt(client.set_registered_model_alias, "m", "a", 5),
        "missing_model": attempt(client.set_registered_model_alias, "nope", "a", 1),
        "reserved_latest": attempt(client.set_registered_model_alias, "m", "latest", 1),
        "reserved_version": attempt(client.set_registered_model_alias, "m", "v1", 1),
        "bad_chars": attempt(client.set_registered_model_alias, "m", "a b", 1),
        "empty": attempt(client.set_registered_model_alias, "m", "", 1),
        "bad_version": attempt(client.set_registered_model_alias, "m", "ok", "x"),
        "get_missing_model": attempt(client.get_model_version_by_alias, "nope", "a"),
        "get_unknown": attempt(client.get_model_version_by_alias, "m", "unknown"),
        "model": attempt(client.get_registered_model, "m"),
    }


@scenario
def latest_alias(client: MlflowClient) -> object:
    client.create_registered_model("empty")
    _model_with_versions(client, "m", 3)
    client.transition_model_version_stage("m", 3, "Archived")
    return {
        "latest": attempt(client.get_model_version_by_alias, "m", "latest"),
        "LATEST": attempt(client.get_model_version_by_alias, "m", "LATEST"),
        "empty": attempt(client.get_model_version_by_alias, "empty", "latest"),
    }


@scenario
def delete_version_drops_its_aliases(client: MlflowClient) -> object:
    _model_with_versions(client, "m", 2)
    client.set_registered_model_alias("m", "a", 1)
    client.set_registered_model_alias("m", "b", 2)
    client.delete_model_version("m", 1)
    return {
        "model": attempt(client.get_registered_model, "m"),
        "a": attempt(client.get_model_version_by_alias, "m", "a"),
        "b": attempt(client.get_model_version_by_alias, "m", "b"),
    }


# -- search registered models --------------------------------------------------------------------


def _search_models_fixture(client: MlflowClient) -> None:
    for name, tags in [
        ("alpha", {"team": "vision", "stage": "dev"}),
        ("Alpine", {"team": "nlp"}),
        ("beta", {"team": "vision"}),
        ("gamma_1", {}),
        ("gamma%2", {"team": "Vision"}),
    ]:
        client.create_registered_model(name, tags=tags)
    client.create_model_version("beta", SOURCE)


def _names(page: object) -> object:
    if isinstance(page, dict):
        return [item["name"] for item in page["items"]] + (["..."] if page["has_next_page"] else [])
    return page


@scenario
def search_models_by_name(client: MlflowClient) -> object:
    _search_models_fixture(client)
    filters = [
        None,
        "name = 'alpha'",
        "name != 'alpha'",
        "name LIKE 'al%'",
        "name ILIKE 'al%'",
        "name LIKE '%a'",
        "name LIKE 'gamma_1'",
        "name LIKE 'gamma\\%2'",
        "name IN ('beta', 'alpha', 'zeta')",
        "name NOT IN ('beta')",
        "attribute.name = 'beta'",
        "`name` = 'beta'",
    ]
    return {str(f): _names(attempt(client.search_registered_models, f)) for f in filters}


@scenario
def search_models_by_tag(client: MlflowClient) -> object:
    _search_models_fixture(client)
    filters = [
        "tags.team = 'vision'",
        "tag.team != 'vision'",
        "tags.team LIKE 'vis%'",
        "tags.team ILIKE 'vis%'",
        "tags.team = 'vision' AND tags.stage = 'dev'",
        "tags.team = 'vision' AND name LIKE 'b%'",
        "tags.`team` = 'nlp'",
        "tags.missing = 'x'",
    ]
    return {f: _names(attempt(client.search_registered_models, f)) for f in filters}


@scenario
def search_models_full_entities(client: MlflowClient) -> object:
    _search_models_fixture(client)
    client.set_registered_model_alias("beta", "prod", 1)
    return attempt(client.search_registered_models, "name = 'beta'")


@scenario
def search_models_order_by(client: MlflowClient) -> object:
    _search_models_fixture(client)
    orders = [
        ["name"],
        ["name DESC"],
        ["name ASC"],
        ["name desc"],
    ]
    return {str(o): _names(attempt(client.search_registered_models, order_by=o)) for o in orders}


@scenario
def search_models_order_by_timestamp(client: MlflowClient) -> object:
    for name in ["c", "a", "b"]:
        client.create_registered_model(name)
    # Make last_updated_timestamp order deterministic: update in a known order, spaced out.
    import time

    for name in ["b", "c", "a"]:
        time.sleep(0.01)
        client.update_registered_model(name, description=name)
    return {
        "asc": _names(attempt(client.search_registered_models, order_by=["timestamp ASC"])),
        "desc": _names(
            attempt(client.search_registered_models, order_by=["last_updated_timestamp DESC"])
        ),
    }


@scenario
def search_models_pagination(client: MlflowClient) -> object:
    for i in range(7):
        client.create_registered_model(f"model-{i}")
    return {
        "pages_of_3": all_pages(
            lambda token: client.search_registered_models(max_results=3, page_token=token)
        ),
        "exact": all_pages(
            lambda token: client.search_registered_models(max_results=7, page_token=token)
        ),
        "filtered": all_pages(
            lambda token: client.search_registered_models(
                "name LIKE 'model-%'", max_results=2, order_by=["name DESC"], page_token=token
            )
        ),
    }


@scenario
def search_models_bad_arguments(client: MlflowClient) -> object:
    _search_models_fixture(client)
    return {
        "unknown_attribute": attempt(client.search_registered_models, "description = 'x'"),
        "bad_comparator": attempt(client.search_registered_models, "name > 'a'"),
        "bad_tag_comparator": attempt(client.search_registered_models, "tags.team IN ('x')"),
        "unquoted": attempt(client.search_registered_models, "name = alpha"),
        "or": attempt(client.search_registered_models, "name = 'a' OR name = 'b'"),
        "garbage": attempt(client.search_registered_models, "name = 'a' AND"),
        "entity": attempt(client.search_registered_models, "metrics.x = 'a'"),
        "order_key": attempt(client.search_registered_models, order_by=["creation_timestamp"]),
        "order_unknown": attempt(client.search_registered_models, order_by=["description"]),
        "order_dup": attempt(
            client.search_registered_models, order_by=["timestamp", "last_updated_timestamp"]
        ),
        "max_results": attempt(client.search_registered_models, max_results=1001),
        "page_token": attempt(client.search_registered_models, page_token="not-a-token"),
    }


@scenario
def prompt_tagged_models_are_hidden(client: MlflowClient) -> object:
    client.create_registered_model("model")
    refused = attempt(
        client.create_registered_model, "tagged", tags={"mlflow.prompt.is_prompt": "true"}
    )
    client.register_prompt("prompt", "Say {{x}}")
    return {
        "refused": refused,
        "default": _names(attempt(client.search_registered_models)),
        "prompts": _names(
            attempt(client.search_registered_models, "tags.`mlflow.prompt.is_prompt` = 'true'")
        ),
        "not_prompts": _names(
            attempt(client.search_registered_models, "tags.`mlflow.prompt.is_prompt` = 'false'")
        ),
        "model_named_like_prompt": attempt(
            client.create_registered_model, "prompt", tags={"x": "y"}
        ),
    }


@scenario
def prompts_round_trip(client: MlflowClient) -> object:
    prompt = client.register_prompt("greeting", "Hello {{name}}", commit_message="first")
    second = client.register_prompt("greeting", "Hi {{name}}!")
    loaded = client.load_prompt("prompts:/greeting/1")
    client.set_prompt_alias("greeting", "prod", 2)
    by_alias = client.load_prompt("prompts:/greeting@prod")
    return {
        "versions": [prompt.version, second.version],
        "template": loaded.template,
        "by_alias": [by_alias.version, by_alias.template],
        "search_prompts": [p.name for p in client.search_prompts()],
        "models": _names(attempt(client.search_registered_models)),
        "versions_search": attempt(client.search_model_versions),
        "as_model_name": attempt(client.create_registered_model, "greeting"),
    }


# -- search model versions -------------------------------------------------------------------------


def _search_versions_fixture(client: MlflowClient) -> None:
    client.create_registered_model("first")
    client.create_registered_model("second")
    for i in range(4):
        client.create_model_version(
            "first", f"{SOURCE}/first/{i}", run_id=RUN_A if i < 2 else RUN_B, tags={"i": str(i)}
        )
    for i in range(2):
        client.create_model_version("second", f"s3://other/{i}", run_id=RUN_B)
    client.set_model_version_tag("second", 2, "quality", "high")


def _versions(page: object) -> object:
    if isinstance(page, dict):
        items = [f"{item['name']}/{item['version']}" for item in page["items"]]
        return items + (["..."] if page["has_next_page"] else [])
    return page


_BY_VERSION = ["name ASC", "version_number ASC"]


@scenario
def search_versions_by_attribute(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    filters = [
        "name = 'first'",
        "name != 'first'",
        "name LIKE 'sec%'",
        "name ILIKE 'FIR%'",
        "name IN ('second')",
        f"run_id = '{RUN_A}'",
        f"run_id IN ('{RUN_A}', '{RUN_B}')",
        f"run_id NOT IN ('{RUN_A}')",
        "source_path LIKE 's3://other/%'",
        "source_path = 's3://other/1'",
        "name = 'first' AND version_number >= 3",
        "version_number = 2",
        "version_number != 2",
        "version_number < 2",
        "version_number > 3",
        "version_number <= 1",
        "version_number = '3'",
    ]
    return {
        f: _versions(attempt(client.search_model_versions, f, order_by=_BY_VERSION))
        for f in filters
    }


@scenario
def search_versions_by_tag(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    filters = [
        "tags.i = '1'",
        "tag.i != '1'",
        "tags.i LIKE '%'",
        "tags.quality ILIKE 'HIGH'",
        "tags.i = '3' AND name = 'first'",
        "tags.quality = 'high' AND version_number = 2",
    ]
    return {
        f: _versions(attempt(client.search_model_versions, f, order_by=_BY_VERSION))
        for f in filters
    }


@scenario
def search_versions_full_entities(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    client.set_registered_model_alias("second", "prod", 1)
    return attempt(client.search_model_versions, "name = 'second'", order_by=_BY_VERSION)


@scenario
def search_versions_order_by(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    orders = [
        ["version_number DESC"],
        ["name DESC", "version_number ASC"],
        ["name", "version_number"],
        ["version_number ASC", "name DESC"],
    ]
    return {str(o): _versions(attempt(client.search_model_versions, order_by=o)) for o in orders}


@scenario
def search_versions_pagination(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    return {
        "pages_of_4": all_pages(
            lambda token: client.search_model_versions(
                max_results=4, order_by=_BY_VERSION, page_token=token
            )
        ),
        "filtered": all_pages(
            lambda token: client.search_model_versions(
                "name = 'first'", max_results=3, order_by=["version_number DESC"], page_token=token
            )
        ),
    }


@scenario
def search_versions_bad_arguments(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    return {
        "unknown_attribute": attempt(client.search_model_versions, "description = 'x'"),
        "numeric_like": attempt(client.search_model_versions, "version_number LIKE '1'"),
        "string_gt": attempt(client.search_model_versions, "name > 'a'"),
        "float_version": attempt(client.search_model_versions, "version_number = 1.5"),
        "text_version": attempt(client.search_model_versions, "version_number = 'abc'"),
        "source_in": attempt(client.search_model_versions, "source_path IN ('x')"),
        "tag_in": attempt(client.search_model_versions, "tags.i IN ('1')"),
        "unquoted": attempt(client.search_model_versions, "name = first"),
        "or": attempt(client.search_model_versions, "name = 'a' OR name = 'b'"),
        "order_unknown": attempt(client.search_model_versions, order_by=["run_id"]),
        "order_dup": attempt(client.search_model_versions, order_by=["name", "name DESC"]),
        "max_results_zero": attempt(client.search_model_versions, max_results=0),
        "max_results_huge": attempt(client.search_model_versions, max_results=200_001),
        "page_token": attempt(client.search_model_versions, page_token="garbage"),
    }


@scenario
def search_versions_after_rename_and_delete(client: MlflowClient) -> object:
    _search_versions_fixture(client)
    client.rename_registered_model("first", "renamed")
    client.delete_model_version("renamed", 2)
    client.delete_registered_model("second")
    return _versions(attempt(client.search_model_versions, order_by=_BY_VERSION))


@scenario
def rename_model_to_its_own_name(client: MlflowClient) -> object:
    _model_with_versions(client, "same", 1)
    return {
        "renamed": attempt(client.rename_registered_model, "same", "same"),
        "model": attempt(client.get_registered_model, "same"),
    }


@scenario
def search_versions_by_run_for_run_page(client: MlflowClient) -> object:
    """What the UI's run page asks: the versions registered from one run."""
    _search_versions_fixture(client)
    return attempt(client.search_model_versions, f"run_id = '{RUN_A}'", order_by=_BY_VERSION)
