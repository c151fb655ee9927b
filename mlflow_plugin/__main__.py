"""``python -m mlflow_plugin``: the command line (see ``mlflow_plugin.cli``)."""

from __future__ import annotations

import sys

from mlflow_plugin.cli import main

sys.exit(main())
