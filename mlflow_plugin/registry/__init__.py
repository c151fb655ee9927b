"""MLflow model-registry store on the bucket (``mlflow.model_registry_store`` entry point).

Registered models, versions, stages, aliases and tags as documents under the same root
as the tracking data; see ``registry.store`` for the layout and the concurrency rules.
"""
