"""MLflow tracking store on the bucket."""
