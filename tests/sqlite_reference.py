"""MLflow's ``sqlite:///`` store, the reference, without running its migrations per test.

A new MLflow database runs every one of MLflow's schema migrations when a store first
opens it: about 0.6 s of CPU, more than most tests spend on their own calls. Each process
migrates one database once; a test gets a copy of it, which MLflow opens as it would a
database it had just migrated (the default experiment is created on first use, with this
test's artifact root and clock).

``uri = migrated_sqlite_uri(tmp_path / "reference.db")``
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from mlflow.store.db.utils import _initialize_tables
from sqlalchemy import create_engine

__all__ = ["migrated_sqlite_uri"]

_template: Path | None = None
_template_lock = threading.Lock()


def _migrated_template() -> Path:
    global _template
    with _template_lock:
        if _template is None:
            folder = Path(tempfile.mkdtemp(prefix="mlflow-reference-"))
            atexit.register(shutil.rmtree, folder, True)
            path = folder / "migrated.db"
            engine = create_engine(f"sqlite:///{path}")
            try:
                _initialize_tables(engine)  # what SqlAlchemyStore runs on an empty database
            finally:
                engine.dispose()
            _template = path
        return _template


def migrated_sqlite_uri(path: Path) -> str:
    """The ``sqlite:///`` URI of a new database at ``path`` holding MLflow's current schema
    and what its migrations insert, no experiment yet; ``path`` must not exist yet."""
    if path.exists():
        raise FileExistsError(f"{path} exists: a reference database starts empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_template(), path)
    return f"sqlite:///{path}"
