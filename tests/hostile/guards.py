"""What must hold around every hostile case: nothing written outside the root.

``outside_root_unchanged`` snapshots everything next to a store's root before a case and
after it: for a folder root, every file under the root's parent directory except the root
itself; for an S3 root, every object of the bucket outside the root's prefix. Any
difference (an object written, changed or deleted outside the root) fails the case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow_plugin.objectstore import open_object_store, parse_store_uri
from mlflow_plugin.objectstore.s3 import S3ClientSettings, s3_client


def folder_snapshot(folder: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` but not under ``skip``: relative path -> (size, mtime)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        for name in filenames:
            path = Path(dirpath, name)
            if skip in path.parents:
                continue
            stat = path.stat()
            found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return found


def bucket_snapshot(uri: str) -> dict[str, str]:
    """Every object of the S3 root's bucket outside its prefix: key -> ETag."""
    location = parse_store_uri(uri)
    client = s3_client(S3ClientSettings(endpoint_url=location.endpoint_url(), region="us-east-1"))
    prefix = location.prefix + "/"
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(prefix):
                found[item["Key"]] = item["ETag"]
    return found


def root_keys(uri: str) -> set[str]:
    """Every key under a store's root (what the case wrote inside it, for the messages)."""
    return {info.key for info in open_object_store(uri).list("")}


def snapshot_outside(uri: str) -> object:
    location = parse_store_uri(uri)
    if location.is_s3:
        return bucket_snapshot(uri)
    root = Path(location.path)
    return folder_snapshot(root.parent, root)


@contextmanager
def outside_root_unchanged(uri: str) -> Iterator[None]:
    """Fail if anything outside the root of ``uri`` changes inside the block."""
    before = snapshot_outside(uri)
    yield
    after = snapshot_outside(uri)
    if after != before:
        assert isinstance(before, dict) and isinstance(after, dict)
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        raise AssertionError(
            f"objects outside the root {uri} changed: added {added[:10]}, "
            f"removed {removed[:10]}, changed {changed[:10]}"
        )
