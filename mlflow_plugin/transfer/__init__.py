"""Moving data in and out of a store through MLflow's client: metric export, TensorBoard import.

A layer above ``tracking``: it talks to any tracking URI through ``MlflowClient``.
"""
