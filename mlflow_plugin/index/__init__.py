"""The query index: a SQLAlchemy database (SQLite by default) mirroring the bucket's
run and experiment documents, so that searches are SQL queries instead of reads of
every document (the local cache of metric segments is ``mlflow_plugin.cache``). A
disposable cache: deleting
it loses nothing; it is rebuilt from the bucket (``python -m mlflow_plugin reindex``,
or by itself on the next search).

Import the modules themselves (``mlflow_plugin.index.query_index``...): this package
imports nothing, so a process that only logs never loads SQLAlchemy's models.
"""
