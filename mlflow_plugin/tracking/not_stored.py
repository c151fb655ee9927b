"""What the tracking store does not store: traces and MLflow 3's GenAI kinds, as one table.

The product keeps training runs. Traces, trace assessments, evaluation datasets,
scorers, issues, label schemas, review queues, the AI gateway (secrets, endpoints,
model definitions, guardrails, budget policies) and MCP servers are not stored: reads
of many answer empty (the UI's GenAI pages show "nothing yet"), a read of one answers
RESOURCE_DOES_NOT_EXIST, and writes answer NOT_IMPLEMENTED with a sentence saying
what is not stored (``mlflow_plugin.not_stored`` has the rules). Every method of
MLflow's ``AbstractStore`` is either implemented by the store, answered here, or a
base-class default that works through the store's own methods; a test enumerates
them from MLflow so that a method a new MLflow adds is noticed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from mlflow.tracing.analysis import TraceFilterCorrelationResult

from mlflow_plugin.not_stored import TRACKING, Kind, empty_page, no_results_no_token

if TYPE_CHECKING:
    from mlflow.genai.review_queues.review_queues import ReviewQueue

__all__ = [
    "ASSESSMENTS",
    "BUDGET_POLICIES",
    "DATASETS",
    "ENDPOINTS",
    "GUARDRAILS",
    "ISSUES",
    "LABEL_SCHEMAS",
    "MCP_SERVERS",
    "MODEL_DEFINITIONS",
    "ONLINE_SCORING",
    "REVIEW_QUEUES",
    "SCORERS",
    "SECRETS",
    "TRACES",
    "KindsNotStoredMixin",
    "unsaved_user_queue",
]

TRACES = Kind("Traces", "Trace", TRACKING)
ASSESSMENTS = Kind("Trace assessments", "Assessment", TRACKING)
DATASETS = Kind("Evaluation datasets", "Evaluation dataset", TRACKING)
SCORERS = Kind("Scorers", "Scorer", TRACKING)
ONLINE_SCORING = Kind("Online scoring configurations", "Online scoring configuration", TRACKING)
ISSUES = Kind("Issues", "Issue", TRACKING)
LABEL_SCHEMAS = Kind("Label schemas", "Label schema", TRACKING)
REVIEW_QUEUES = Kind("Review queues", "Review queue", TRACKING)
SECRETS = Kind("AI gateway secrets", "AI gateway secret", TRACKING)
ENDPOINTS = Kind("AI gateway endpoints", "AI gateway endpoint", TRACKING)
MODEL_DEFINITIONS = Kind("AI gateway model definitions", "AI gateway model definition", TRACKING)
GUARDRAILS = Kind("AI gateway guardrails", "AI gateway guardrail", TRACKING)
BUDGET_POLICIES = Kind("AI gateway budget policies", "AI gateway budget policy", TRACKING)
MCP_SERVERS = Kind("MCP servers", "MCP server", TRACKING)


def unsaved_user_queue(experiment_id: str, user: str, created_ms: int) -> ReviewQueue:
    """The user's review queue, empty and not stored.

    The GenAI view's Review page asks for the signed-in user's queue on load
    (``get_or_create_user_queue``) and then lists its items; an unsaved, empty queue
    lets the page show "nothing to review" where a refusal would show an error. It is
    the same at every call (its times are ``created_ms``, its experiment's creation),
    and anything that would store into it is refused.
    """
    from mlflow.genai.review_queues.review_queues import ReviewQueue, ReviewQueueType

    return ReviewQueue(
        queue_id=uuid.uuid5(uuid.NAMESPACE_URL, f"user-queue/{experiment_id}/{user}").hex,
        experiment_id=experiment_id,
        name=user,
        queue_type=ReviewQueueType.USER,
        created_by=user,
        creation_time_ms=created_ms,
        last_update_time_ms=created_ms,
        users=[user],
    )


def _no_correlation() -> TraceFilterCorrelationResult:
    # No traces: every count is 0 and NPMI is undefined, as MLflow spells it (NaN).
    return TraceFilterCorrelationResult(
        npmi=float("nan"), filter1_count=0, filter2_count=0, joint_count=0, total_count=0
    )


class KindsNotStoredMixin:
    """Empty reads, missing items and refused writes for every kind not stored.

    Stateless rows only: nothing here reads or declares an attribute of the store.
    """

    # -- traces ------------------------------------------------------------------------
    search_traces = TRACES.empty(no_results_no_token)
    batch_get_traces = batch_get_trace_infos = find_completed_sessions = TRACES.empty(list)
    query_trace_metrics = TRACES.empty(empty_page)
    calculate_trace_filter_correlation = TRACES.empty(_no_correlation)
    # Counts of traces deleted or archived: there are none.
    delete_traces = _delete_traces = archive_traces = TRACES.empty(int)
    get_trace_info = get_trace = get_online_trace_details = TRACES.get()
    start_trace = deprecated_start_trace_v2 = deprecated_end_trace_v2 = TRACES.write()
    log_spans = set_trace_tag = delete_trace_tag = link_prompts_to_trace = TRACES.write()
    link_traces_to_run = unlink_traces_from_run = TRACES.write()

    # -- trace assessments -------------------------------------------------------------
    get_assessment = ASSESSMENTS.get()
    create_assessment = update_assessment = delete_assessment = ASSESSMENTS.write()

    # -- evaluation datasets -----------------------------------------------------------
    search_datasets = DATASETS.empty(empty_page)
    # Reads of many, and MLflow's handlers for these two let any error become a 500.
    get_dataset_experiment_ids = DATASETS.empty(list)
    _load_dataset_records = DATASETS.empty(no_results_no_token)
    get_dataset = DATASETS.get()
    create_dataset = delete_dataset = set_dataset_tags = delete_dataset_tag = DATASETS.write()
    upsert_dataset_records = delete_dataset_records = DATASETS.write()
    add_dataset_to_experiments = remove_dataset_from_experiments = DATASETS.write()

    # -- scorers and online scoring ----------------------------------------------------
    list_scorers = list_scorer_versions = SCORERS.empty(list)
    get_scorer = SCORERS.get()
    register_scorer = delete_scorer = SCORERS.write()
    # The server's scheduler asks for active scorers periodically: none.
    get_active_online_scorers = get_online_scoring_configs = ONLINE_SCORING.empty(list)
    upsert_online_scoring_config = ONLINE_SCORING.write()

    # -- issues, label schemas, review queues ------------------------------------------
    search_issues = ISSUES.empty(empty_page)
    get_issue = ISSUES.get()
    create_issue = update_issue = ISSUES.write()
    list_label_schemas = LABEL_SCHEMAS.empty(empty_page)
    get_label_schema = get_label_schema_by_name = LABEL_SCHEMAS.get()
    create_label_schema = update_label_schema = delete_label_schema = LABEL_SCHEMAS.write()
    # get_or_create_user_queue is the store's own (an unsaved queue, see unsaved_user_queue).
    list_review_queues = list_review_queue_items = REVIEW_QUEUES.empty(empty_page)
    get_review_queue = get_review_queue_by_name = REVIEW_QUEUES.get()
    create_review_queue = update_review_queue = delete_review_queue = REVIEW_QUEUES.write()
    add_items_to_review_queue = remove_items_from_review_queue = REVIEW_QUEUES.write()
    set_review_queue_item_status = REVIEW_QUEUES.write()

    # -- AI gateway --------------------------------------------------------------------
    list_secret_infos = SECRETS.empty(list)
    get_secret_info = SECRETS.get()
    create_gateway_secret = update_gateway_secret = delete_gateway_secret = SECRETS.write()
    list_gateway_endpoints = list_endpoint_bindings = ENDPOINTS.empty(list)
    # Spending through endpoints that do not exist: nothing.
    sum_gateway_trace_cost = ENDPOINTS.empty(float)
    get_gateway_endpoint = ENDPOINTS.get()
    create_gateway_endpoint = update_gateway_endpoint = delete_gateway_endpoint = ENDPOINTS.write()
    set_gateway_endpoint_tag = delete_gateway_endpoint_tag = ENDPOINTS.write()
    attach_model_to_endpoint = detach_model_from_endpoint = ENDPOINTS.write()
    create_endpoint_binding = delete_endpoint_binding = ENDPOINTS.write()
    list_gateway_model_definitions = MODEL_DEFINITIONS.empty(list)
    get_gateway_model_definition = MODEL_DEFINITIONS.get()
    create_gateway_model_definition = update_gateway_model_definition = (
        delete_gateway_model_definition
    ) = MODEL_DEFINITIONS.write()
    list_gateway_guardrails = GUARDRAILS.empty(empty_page)
    list_endpoint_guardrail_configs = GUARDRAILS.empty(list)
    get_gateway_guardrail = GUARDRAILS.get()
    create_gateway_guardrail = delete_gateway_guardrail = GUARDRAILS.write()
    add_guardrail_to_endpoint = remove_guardrail_from_endpoint = GUARDRAILS.write()
    update_endpoint_guardrail_config = GUARDRAILS.write()
    list_budget_policies = BUDGET_POLICIES.empty(empty_page)
    get_budget_policy = BUDGET_POLICIES.get()
    create_budget_policy = update_budget_policy = delete_budget_policy = BUDGET_POLICIES.write()

    # -- MCP server registry -----------------------------------------------------------
    search_mcp_servers = search_mcp_server_versions = MCP_SERVERS.empty(empty_page)
    search_mcp_access_endpoints = MCP_SERVERS.empty(empty_page)
    get_mcp_server_versions_for_trace = MCP_SERVERS.empty(list)
    get_mcp_server = get_mcp_server_version = get_latest_mcp_server_version = MCP_SERVERS.get()
    get_mcp_server_version_by_alias = get_mcp_access_endpoint = MCP_SERVERS.get()
    create_mcp_server = update_mcp_server = delete_mcp_server = MCP_SERVERS.write()
    set_mcp_server_tag = delete_mcp_server_tag = MCP_SERVERS.write()
    create_mcp_server_version = update_mcp_server_version = MCP_SERVERS.write()
    delete_mcp_server_version = set_mcp_server_version_tag = MCP_SERVERS.write()
    delete_mcp_server_version_tag = MCP_SERVERS.write()
    set_mcp_server_alias = delete_mcp_server_alias = MCP_SERVERS.write()
    create_mcp_access_endpoint = update_mcp_access_endpoint = MCP_SERVERS.write()
    delete_mcp_access_endpoint = link_mcp_server_versions_to_trace = MCP_SERVERS.write()
