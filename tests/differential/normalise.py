"""Normalisation of scenario results, and the diff printed when two results differ.

Normalisation only hides what legitimately differs between two stores: generated ids
(replaced by placeholders in order of first appearance), wall-clock timestamps (coarsened to
``"<now>"``; small explicit timestamps that scenarios pass in are kept) and whatever keys a
suite drops. NaN and infinities become strings so that equal results compare equal.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# Explicit timestamps that scenarios pass in stay below this; wall-clock milliseconds
# (about 1.7e12 today) are above it and get coarsened.
WALL_CLOCK_FLOOR = 10**12


@dataclass(frozen=True)
class Normaliser:
    """Placeholders for generated ids, ``"<now>"`` for wall-clock timestamps, dropped keys.

    ``id_keys`` maps a key to the kind of id its value holds (a string or a list of them);
    ids of the ``text_kinds`` are long and random, so they are replaced wherever they appear,
    also inside other strings and keys. ``shared_ids`` are ``(kind, id)`` pairs that are the
    same on every store and stay as they are::

        normalise = Normaliser(
            timestamp_keys=frozenset({"creation_time"}), id_keys={"run_id": "run"}
        )
        normalise({"run_id": "9f2c...", "creation_time": 1712345678901})
        # {"creation_time": "<now>", "run_id": "<run1>"}
    """

    timestamp_keys: frozenset[str]
    id_keys: Mapping[str, str]
    text_kinds: tuple[str, ...] = ("run", "model")
    dropped_keys: frozenset[str] = frozenset()
    shared_ids: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def __call__(self, value: object) -> object:
        kinds = set(self.id_keys.values())
        ids: dict[str, dict[str, str]] = {kind: {} for kind in kinds}
        self._collect_ids(value, ids, kind=None)
        placeholders: dict[str, str] = {}
        counters = dict.fromkeys(kinds, 0)

        def placeholder(kind: str, raw: str) -> str:
            if (kind, raw) in self.shared_ids:
                return raw
            key = f"{kind}:{raw}"
            if key not in placeholders:
                counters[kind] += 1
                placeholders[key] = f"<{kind}{counters[kind]}>"
            return placeholders[key]

        def substitute(text: str) -> str:
            for kind in self.text_kinds:
                for raw in ids[kind]:
                    if raw in text:
                        text = text.replace(raw, placeholder(kind, raw))
            return text

        def walk(node: object, key: str | None) -> object:
            if isinstance(node, dict):
                out: dict[str, object] = {}
                for k in sorted(node, key=str):
                    if k in self.dropped_keys:
                        continue
                    out[substitute(k) if isinstance(k, str) else k] = walk(node[k], k)
                return out
            if isinstance(node, list):
                return [walk(item, key) for item in node]
            if isinstance(node, float):
                if math.isnan(node):
                    return "NaN"
                if math.isinf(node):
                    return "+inf" if node > 0 else "-inf"
            if (
                key in self.timestamp_keys
                and isinstance(node, int | float)
                and node >= WALL_CLOCK_FLOOR
            ):
                return "<now>"
            if isinstance(node, str):
                kind = self.id_keys.get(key or "")
                if kind is not None:
                    return placeholder(kind, node)
                return substitute(node)
            return node

        return walk(value, None)

    def _collect_ids(self, node: object, ids: dict[str, dict[str, str]], kind: str | None) -> None:
        if isinstance(node, dict):
            for k in sorted(node, key=str):
                self._collect_ids(node[k], ids, self.id_keys.get(k))
        elif isinstance(node, list):
            for item in node:
                self._collect_ids(item, ids, kind)
        elif isinstance(node, str) and kind is not None and node:
            ids[kind][node] = node


def difference(expected: object, actual: object) -> str:
    """A unified diff of two normalised results, reference first."""
    return "\n".join(
        difflib.unified_diff(
            _render(expected).splitlines(),
            _render(actual).splitlines(),
            fromfile="sqlite (reference)",
            tofile="candidate",
            lineterm="",
            n=4,
        )
    )


def _render(value: object) -> str:
    return json.dumps(_shorten(value), indent=1, sort_keys=True, default=str)


def _shorten(value: object, limit: int = 60) -> object:
    """Long strings cut for the diff (a 6000-character param would drown it); lengths kept."""
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}...({len(value)} chars)"
    return value
