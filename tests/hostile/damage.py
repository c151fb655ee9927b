"""Generated damage: every way a stored document can be wrong, derived from a real one.

``damage_cases(document_bytes)`` walks a document that a store wrote and yields, for every
field at every depth: the field missing, each JSON type it must not have (and an integer
too big for 64 bits), a lone surrogate in its text; for every object: an extra field, and
a name holding a lone surrogate; for the whole object: truncations, non-UTF-8 bytes, and
JSON values that are no document. Deterministic (a seeded generator picks where bytes are
cut), so a failure names a case that the next run repeats.

The count of cases that ran is printed in pytest's closing summary (``summary``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DamageCase", "RUN_COUNTS", "damage_cases", "summary"]

Path = tuple[str | int, ...]

#: Values of every JSON type (and an integer beyond 64 bits) to put where they do not belong.
_WRONG_VALUES: dict[str, Any] = {
    "null": None,
    "bool": True,
    "int": 7,
    "int_beyond_64_bits": 2**70,
    "float": 1.5,
    "text": "x",
    "list": [1, "two"],
    "object": {"a": 1},
}
_SURROGATE = "\udc80"
_NOT_DOCUMENTS = {"empty": b"", "null": b"null", "array": b"[]", "text": b'"run"', "number": b"1"}
_BAD_UTF8 = {"lone_ff": b"\xff", "bad_continuation": b"\xc3\x28", "overlong": b"\xc0\xaf"}

#: Where the generated cases ran: "bucket_file", "bucket_s3", "server_*" -> cases.
RUN_COUNTS: dict[str, int] = {}


@dataclass(frozen=True)
class DamageCase:
    """One damaged version of a document: ``make(original bytes) -> damaged bytes``."""

    name: str
    make: Callable[[bytes], bytes] = field(compare=False)


def summary(counts: dict[str, int]) -> str:
    """The closing line for ``counts`` (``RUN_COUNTS`` of every test process, summed)."""
    where = ", ".join(f"{count} on {name}" for name, count in sorted(counts.items()))
    return f"generated-damage suite: {sum(counts.values())} cases ({where})"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    return "object"


def _paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) below the root, depth first."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield (*path, name), item
            yield from _paths(item, (*path, name))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield (*path, position), item
            yield from _paths(item, (*path, position))


def _objects(value: Any, path: Path = ()) -> Iterator[Path]:
    """The path of every JSON object, the root included."""
    if isinstance(value, dict):
        yield path
        for name, item in value.items():
            yield from _objects(item, (*path, name))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _objects(item, (*path, position))


def _spelled(path: Path) -> str:
    return "/".join(str(part) for part in path) or "(root)"


def _edit(path: Path, change: Callable[[Any, str | int], None]) -> Callable[[bytes], bytes]:
    """A damage that decodes the document, changes the container at ``path``, re-encodes."""

    def make(data: bytes) -> bytes:
        doc = json.loads(data)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        change(parent, path[-1])
        # ensure_ascii: a lone surrogate is written as the \\udc80 escape, as our encoder does.
        return json.dumps(doc).encode("utf-8")

    return make


def _set(value: Any) -> Callable[[Any, str | int], None]:
    def change(parent: Any, name: str | int) -> None:
        parent[name] = value

    return change


def _delete(parent: Any, name: str | int) -> None:
    del parent[name]


def _with_surrogate(parent: Any, name: str | int) -> None:
    parent[name] = _SURROGATE + parent[name]


def _object_edit(path: Path, name: str, value: Any) -> Callable[[bytes], bytes]:
    def make(data: bytes) -> bytes:
        doc = json.loads(data)
        target = doc
        for part in path:
            target = target[part]
        target[name] = value
        return json.dumps(doc).encode("utf-8")

    return make


def _cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def _insert_at(seed: int, junk: bytes) -> Callable[[bytes], bytes]:
    """``junk`` inside one of the document's text values, chosen by ``seed``."""

    def make(data: bytes) -> bytes:
        starts = [i + 3 for i in range(len(data)) if data[i : i + 3] == b'":"']
        at = random.Random(seed).choice(starts) if starts else len(data) // 2
        return data[:at] + junk + data[at:]

    return make


def damage_cases(original: bytes, seed: int = 13) -> list[DamageCase]:
    """Every generated damage of the document ``original`` (a real stored document)."""
    doc = json.loads(original)
    cases: list[DamageCase] = []
    for path, value in _paths(doc):
        where = _spelled(path)
        if isinstance(path[-1], str):
            cases.append(DamageCase(f"{where}:missing", _edit(path, _delete)))
        current = _json_type(value)
        for wrong, replacement in _WRONG_VALUES.items():
            if wrong == current or (wrong == "int_beyond_64_bits" and current not in ("int",)):
                continue
            cases.append(DamageCase(f"{where}:{wrong}", _edit(path, _set(replacement))))
        if isinstance(value, str):
            cases.append(DamageCase(f"{where}:lone_surrogate", _edit(path, _with_surrogate)))
    for path in _objects(doc):
        where = _spelled(path)
        extra = {"added": [1, {"by": "a newer writer"}]}
        cases.append(DamageCase(f"{where}:extra_field", _object_edit(path, "zz_extra", extra)))
        cases.append(
            DamageCase(f"{where}:surrogate_name", _object_edit(path, f"k{_SURROGATE}", "v"))
        )
    rng = random.Random(seed)
    fractions = [0.0, 0.25, 0.5, 0.75, 0.99, *(rng.uniform(0.01, 0.99) for _ in range(3))]
    for fraction in fractions:
        cases.append(DamageCase(f"truncated_at_{fraction:.3f}", _cut(fraction)))
    for name, junk in _BAD_UTF8.items():
        for position in range(2):
            cases.append(
                DamageCase(f"not_utf8_{name}_{position}", _insert_at(seed + position, junk))
            )
    for name, body in _NOT_DOCUMENTS.items():
        cases.append(DamageCase(f"not_a_document_{name}", lambda data, body=body: body))
    return cases
