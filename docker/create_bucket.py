"""One-shot setup for the compose stack: wait for S3, create the bucket, check it.

Reads MLFLOW_BUCKET, MLFLOW_BUCKET_PREFIX, MLFLOW_S3_ENDPOINT_URL and the AWS_*
credentials, creates the bucket if it is missing, then runs ``mlflow-bucket doctor``
on the store until it passes (the S3 gateway answers before it accepts writes).
Exit 0 when the store is ready; 1 after CREATE_BUCKET_TIMEOUT seconds (default 120).
"""

from __future__ import annotations

import os
import sys
import time

import boto3
import botocore.exceptions

from mlflow_plugin.cli import main as cli


def _create_bucket(bucket: str) -> str:
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    try:
        client.create_bucket(Bucket=bucket)
    except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        return f"bucket {bucket} exists"
    return f"created bucket {bucket}"


def main() -> int:
    bucket = os.environ["MLFLOW_BUCKET"]
    prefix = os.environ.get("MLFLOW_BUCKET_PREFIX", "").strip("/")
    uri = f"bucket+s3://{bucket}/{prefix}" if prefix else f"bucket+s3://{bucket}"
    deadline = time.monotonic() + float(os.environ.get("CREATE_BUCKET_TIMEOUT", "120"))
    created = None
    while created is None:
        try:
            created = _create_bucket(bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            if time.monotonic() > deadline:
                print(f"error: could not create bucket {bucket}: {exc}", file=sys.stderr)
                return 1
            time.sleep(1)
    print(created, flush=True)
    while cli(["doctor", "--quiet", uri]) != 0:
        if time.monotonic() > deadline:
            return 1
        time.sleep(1)
    return cli(["doctor", uri])


if __name__ == "__main__":
    sys.exit(main())
