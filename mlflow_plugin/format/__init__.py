"""The storage format, MLflow-agnostic: keys, typed JSON documents, the compare-and-swap
loop, name claims, Parquet metric segments, garbage collection. ``docs/FORMAT.md`` is its
normative description.
"""
