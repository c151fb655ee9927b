"""Fault injection between the client and an S3 endpoint (see ``proxy``)."""
