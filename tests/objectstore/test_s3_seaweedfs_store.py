from __future__ import annotations

from tests.objectstore.s3_backend import S3Conformance


class TestS3ObjectStoreOnSeaweedFS(S3Conformance):
    endpoint_fixture = "seaweedfs_s3"
