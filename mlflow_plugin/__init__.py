"""mlflow-bucket: MLflow experiment tracking in an S3-compatible bucket or a local folder.

Set ``MLFLOW_TRACKING_URI=bucket+s3://my-bucket/team`` (or ``bucket+file:./mlruns-bucket``)
and use MLflow as usual; browse with ``mlflow ui --backend-store-uri <the same URI>``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
