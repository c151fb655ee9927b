"""The MLflow UI in a real browser, served by ``mlflow server`` on a bucket store."""
