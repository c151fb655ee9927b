"""TensorBoard tags as MLflow names: every tag maps to a name MLflow accepts, at the call.

TensorBoard accepts any string as a tag; MLflow refuses some metric, param and tag keys
(characters outside its set, paths that normalise to another name, more than
``MAX_ENTITY_KEY_LENGTH`` characters) and is stricter still for image keys. A name it
would refuse is mapped where the user's call is made, so a bad name can never fail a
background upload and take other points with it. The rule (``mlflow_key``):

1. a name MLflow accepts is kept as it is;
2. each character MLflow refuses becomes ``_`` (as TensorBoard's own tag cleaning does);
3. empty and ``.`` path segments are dropped, a ``..`` segment and a leading ``..`` become
   ``__``; an empty name is ``_``;
4. a name still too long keeps its head and ends in ``-`` plus 10 hex digits of the
   SHA-256 of the original name, so two long tags stay distinct and a tag always maps
   to the same key;
5. two different names never share a key within a ``scope`` (the helpers pass the run,
   so metrics, params and artifact folders of one run): the first name mapped to a key
   keeps it, and a later name that would map to it gets ``-`` plus 10 hex digits of the
   SHA-256 of its own name (``acc@1`` then ``acc_1`` in one run: ``acc_1`` and
   ``acc_1-<digest>``), with a warning. Without a scope the mapping is pure;
6. a metric a helper derives (``derived_key``: a histogram's ``<key>/mean``) is held apart
   from a user's metric of the same name the same way, the digest before its suffix
   (``w/mean`` logged by the user, then a histogram ``w``: ``w-<digest>/mean``).

``image_key`` applies the same rule with MLflow's image-key characters and a shorter
limit (the key becomes part of a file name); artifact folders use it too. Whether a
name is valid is decided by MLflow's own checks (``mlflow.utils.validation``).

>>> mlflow_key("Loss/train"), mlflow_key("loss@1"), len(mlflow_key("x" * 300))
('Loss/train', 'loss_1', 250)
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Hashable
from typing import TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    _validate_metric_name,
    validate_param_and_metric_name,
)

__all__ = ["DERIVED_SUFFIX_ROOM", "IMAGE_KEY_LENGTH", "derived_key", "image_key", "mlflow_key"]

_logger = logging.getLogger(__name__)

# Room kept for the suffixes the helpers append to a mapped name ("/p100", "/norm").
DERIVED_SUFFIX_ROOM = 8
# MLflowClient.log_image stores "images/<key>+step+<n>+timestamp+<ms>+<uuid>+compressed.webp"
# as one file name (255 bytes on most file systems): the key gets what the rest leaves.
IMAGE_KEY_LENGTH = 100
# The characters MLflowClient.log_image accepts in a key (its own inline check).
_IMAGE_KEY_REFUSED = re.compile(r"[^A-Za-z0-9_\-./ ]")
_DIGEST_CHARS = 10

_K = TypeVar("_K", bound=Hashable)
# Mapped names, so the training loop pays one dict lookup per call (a race only repeats work).
_mapped: dict[tuple[str, int, Hashable], str] = {}
_mapped_images: dict[tuple[str, Hashable], str] = {}
_warned: set[str] = set()
# Per key space (kind, room, scope): which name holds each key, so two names never merge.
_holders: dict[tuple[str, int, Hashable], dict[str, str]] = {}
_holders_lock = threading.Lock()


def mlflow_key(name: str, room: int = 0, scope: Hashable = None) -> str:
    """A metric, param or tag key MLflow accepts for ``name``, at most 250 - ``room`` long.

    ``scope`` is where two names must not share a key (e.g. a run id); None: no check.
    Raises MlflowException (INVALID_PARAMETER_VALUE) for a name that is not a string.
    """
    cached = _mapped.get((name, room, scope)) if isinstance(name, str) else None
    if cached is not None:
        return cached
    _require_string(name)
    limit = MAX_ENTITY_KEY_LENGTH - room
    key = name if _is_valid_key(name, limit) else _map_key(name, limit)
    key = _claim(("key", room, scope), name, key, limit)
    _remember(_mapped, (name, room, scope), name, key)
    return key


def derived_key(base: str, suffix: str, scope: Hashable) -> str:
    """The key of a metric a helper derives from ``base`` (a key ``mlflow_key`` mapped with
    ``DERIVED_SUFFIX_ROOM``): ``<base>/<suffix>``, held in ``scope``'s metric keys by the
    helper, so a user's own metric of that name and the derived one never share a series
    (the later of the two gets a digest, with a warning).

    >>> derived_key("weights/fc1", "mean", scope="run")
    'weights/fc1/mean'
    """
    origin = f"{base}/{suffix}\x00derived"  # a name no call of the user's is expected to pass
    cached = _mapped.get((origin, 0, scope))
    if cached is not None:
        return cached
    key = _claim(("key", 0, scope), origin, base, MAX_ENTITY_KEY_LENGTH, f"/{suffix}")
    _mapped[(origin, 0, scope)] = key
    return key


def image_key(name: str, scope: Hashable = None) -> str:
    """An image key (and artifact folder name) MLflow accepts for ``name``.

    >>> image_key("samples/ü@1"), image_key("../x")
    ('samples/__1', '__/x')
    """
    cached = _mapped_images.get((name, scope)) if isinstance(name, str) else None
    if cached is not None:
        return cached
    _require_string(name)
    key = _shorten(_clean_path(_IMAGE_KEY_REFUSED.sub("_", name)), name, IMAGE_KEY_LENGTH)
    key = _claim(("image", 0, scope), name, key, IMAGE_KEY_LENGTH)
    _remember(_mapped_images, (name, scope), name, key)
    return key


def _require_string(name: object) -> None:
    if not isinstance(name, str):
        raise MlflowException(
            f"A metric, image or artifact name must be a string, got {type(name).__name__} "
            f"{name!r}",
            INVALID_PARAMETER_VALUE,
        )


def _is_valid_key(name: str, limit: int) -> bool:
    if len(name) > limit:
        return False
    try:
        _validate_metric_name(name)
    except MlflowException:
        return False
    return True


def _map_key(name: str, limit: int) -> str:
    chars = "".join(c if validate_param_and_metric_name(c) else "_" for c in name)
    key = _shorten(_clean_path(chars), name, limit)
    if not _is_valid_key(key, limit):  # only if MLflow's rules change under us
        raise MlflowException(
            f"The name {name!r} cannot be mapped to a valid MLflow key (tried {key!r})",
            INVALID_PARAMETER_VALUE,
        )
    return key


def _clean_path(name: str) -> str:
    """No empty, ``.`` or ``..`` segments: the name stays what posixpath.normpath makes of it.

    MLflow also refuses any name that starts with ``..`` (``..a``): that becomes ``__a``.
    """
    segments = ["__" if s == ".." else s for s in name.split("/") if s not in ("", ".")]
    path = "/".join(segments) or "_"
    return "__" + path[2:] if path.startswith("..") else path


def _shorten(key: str, original: str, limit: int) -> str:
    return key if len(key) <= limit else _with_digest(key, original, limit)


def _with_digest(key: str, original: str, limit: int) -> str:
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: limit - _DIGEST_CHARS - 1]}-{digest[:_DIGEST_CHARS]}"


def _claim(
    space: tuple[str, int, Hashable], name: str, key: str, limit: int, suffix: str = ""
) -> str:
    """``key + suffix`` if no other name of ``space`` holds it, else ``key`` plus a digest
    of ``name``, then ``suffix`` (a derived metric keeps its "/mean")."""
    wanted = key + suffix
    if space[2] is None:
        return wanted
    with _holders_lock:
        holders = _holders.setdefault(space, {})
        holder = holders.setdefault(wanted, name)
        if holder == name:
            return wanted
        distinct = _with_digest(key, name, limit - len(suffix)) + suffix
        holders.setdefault(distinct, name)
    _logger.warning(
        "%s would be logged as %s, which already holds %s; it is logged as %s",
        _preview(name),
        _preview(wanted),
        _preview(holder),
        _preview(distinct),
    )
    _warned.add(name)
    return distinct


def _remember(cache: dict[_K, str], slot: _K, name: str, key: str) -> None:
    if key != name and name not in _warned:
        _warned.add(name)
        _logger.warning(
            "%s is not a name MLflow accepts; it is logged as %s", _preview(name), _preview(key)
        )
    cache[slot] = key


def _preview(name: str) -> str:
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"
