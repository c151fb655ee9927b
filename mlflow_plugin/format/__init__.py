"""The storage format, MLflow-agnostic: keys, JSON documents, the compare-and-swap loop,
Parquet metric segments. See ``../shared`` DESIGN's "Storage format" for the layout.
"""
