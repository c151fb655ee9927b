"""Configs as MLflow params: flattened keys, MLflow's limits, secrets left out.

``log_config`` accepts nested dicts and other mappings (OmegaConf's ``DictConfig``
included), dataclasses, ``argparse.Namespace``, pydantic-style models (``model_dump``)
and lists. Nested keys are joined with dots (``optimizer.lr``); a key MLflow would refuse
is mapped to one it accepts (``names.mlflow_key``). A value longer than
MLflow's param limit is cut with a marker pointing at the config artifact, which holds
the whole config (YAML, or JSON for a ``.json`` name). Values whose key looks like a
secret (password, token, secret, api_key, private_key, credentials...) are replaced by
``***`` in both the params and the artifact.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import itertools
import json
import math
import re
from collections.abc import Hashable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
from mlflow.entities import Param
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

from mlflow_plugin.summaries.names import mlflow_key
from mlflow_plugin.torch.distributed import describes_run
from mlflow_plugin.torch.worker import current_target, get_worker

__all__ = ["REDACTED", "flatten_config", "is_secret_key", "log_config", "to_plain"]

REDACTED = "***"
_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "secrets", "token", "apikey", "credential"}
_SECRET_WORDS |= {"credentials", "passphrase", "privatekey", "secretkey", "accesskey", "authtoken"}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key")}
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_key(key: str) -> bool:
    """True when a key names a credential (``db.password``, ``hfToken``, ``API_KEY``).

    Whole words only, so ``max_tokens`` or ``tokenizer`` are not secrets.

    >>> is_secret_key("wandb.api_key"), is_secret_key("max_tokens")
    (True, False)
    """
    words = [w.lower() for w in _WORD.findall(key)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def to_plain(config: Any) -> Any:
    """Nested dicts/lists/scalars from any supported config object; secrets redacted."""
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf  # only when the user passes an OmegaConf object

        config = OmegaConf.to_container(config, resolve=True)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    elif isinstance(config, argparse.Namespace):
        config = vars(config)
    elif hasattr(config, "model_dump"):
        config = config.model_dump()
    if isinstance(config, Mapping):
        return {
            str(k): REDACTED if is_secret_key(str(k)) else to_plain(v) for k, v in config.items()
        }
    if isinstance(config, list | tuple | set | frozenset):
        return [to_plain(v) for v in config]
    if isinstance(config, enum.Enum):
        return to_plain(config.value)
    if isinstance(config, PurePath):
        return str(config)
    if config is None or isinstance(config, bool | int | str):
        return config
    if isinstance(config, float):
        return config if math.isfinite(config) else str(config)
    if hasattr(config, "item") and getattr(config, "ndim", 1) == 0:
        return to_plain(_scalar_item(config))  # numpy/torch scalars
    return str(config)


def _scalar_item(value: Any) -> Any:
    """A numpy/torch scalar's value; a float printed at its dtype's precision.

    ``torch.tensor(0.3)`` holds the float32 nearest 0.3, whose ``.item()`` is
    0.30000001192092896: the shortest float32 text ("0.3") is what the user wrote.

    >>> _scalar_item(np.float32(0.3)), _scalar_item(np.float64(0.1))
    (0.3, 0.1)
    """
    item = value.item()
    dtype = str(getattr(value, "dtype", ""))
    if not isinstance(item, float) or "64" in dtype:
        return item
    if dtype.endswith("float16") and "bfloat" not in dtype:
        return float(str(np.float16(item)))
    return float(str(np.float32(item)))  # float32, and bfloat16 (exact in float32)


def flatten_config(config: Any, separator: str = ".", scope: Hashable = None) -> dict[str, str]:
    """Param-ready ``{dotted.key: value}``; lists stay one JSON value, like W&B shows them.

    >>> flatten_config({"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}, "api_key": "x"})
    {'optimizer.lr': '0.1', 'optimizer.betas': '[0.9, 0.99]', 'api_key': '***'}
    """
    flat: dict[str, str] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                visit(f"{prefix}{separator}{key}" if prefix else key, inner)
            return
        if isinstance(value, str):
            text = value
        elif value is None or isinstance(value, bool | int | float):
            text = str(value)
        else:
            text = json.dumps(value)
        flat[mlflow_key(prefix, scope=scope)] = text

    visit("", to_plain(config))
    return flat


def _fit_value(value: str, artifact_file: str) -> str:
    if len(value) <= MAX_PARAM_VAL_LENGTH:
        return value
    marker = f"... [truncated; full value in {artifact_file}]"
    return value[: MAX_PARAM_VAL_LENGTH - len(marker)] + marker


def log_config(
    config: Any, artifact_file: str = "config.yaml", *, run_id: str | None = None
) -> dict[str, str]:
    """Log ``config`` as flattened params plus the whole config as an artifact.

    >>> import mlflow
    >>> from mlflow_plugin.torch import log_config
    >>> with mlflow.start_run():  # doctest: +SKIP
    ...     log_config({"optimizer": {"name": "adam", "lr": 3e-4}, "epochs": 5})

    Returns the params that were logged. Logging a key again with another value is an
    MLflow error (params are immutable), as with ``mlflow.log_params``.
    """
    if not describes_run():  # under torch.distributed: rank 0 describes the run
        return {}
    worker = get_worker()
    worker.raise_pending()  # what background logging failed to do, before anything else
    target = current_target(run_id)
    plain = to_plain(config)
    flat = flatten_config(plain, scope=(target.run_id, "params"))
    params = {k: _fit_value(v, artifact_file) for k, v in flat.items()}
    client = worker.client(target.tracking_uri)
    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(target.run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])
    if artifact_file.endswith(".json"):
        client.log_dict(
            target.run_id, plain if isinstance(plain, dict) else {"config": plain}, artifact_file
        )
    else:
        import yaml

        text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
        client.log_text(target.run_id, text, artifact_file)
    return params
