"""The dashboard page: the template files of this package with the run's data inlined.

The page is one self-contained HTML file: its CSS, its script and the data (JSON in a
``<script type="application/json">``) are inline, and nothing refers to the network, so
it works inside MLflow's artifact viewer (a sandboxed iframe from a blob: URL, scripts
allowed, no same-origin access) and opened from disk alike.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

__all__ = ["DATA_ID", "render"]

DATA_ID = "dashboard-data"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# A JSON string, or a token JSON has no word for (json.dumps writes NaN and Infinity).
_STRING_OR_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _inline_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` early: every ``<`` is written ``\\u003c``.

    ``JSON.parse`` refuses NaN and infinities, and a logged value may hold them (a PR
    curve of NaN weights): they are written ``null``, which the page shows as "-".
    """
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError:  # rare: one more pass, over the strings too, to find the tokens
        text = _STRING_OR_NON_FINITE.sub(
            lambda m: "null" if m.group(1) else m.group(0),
            json.dumps(data, separators=(",", ":")),
        )
    return text.replace("<", "\\u003c")


def render(data: dict[str, Any]) -> str:
    """The page for ``data`` (``collect``'s result)."""
    page = _asset("dashboard.html").replace("@DATA_ID@", DATA_ID)
    page = page.replace("/*@CSS@*/", _asset("dashboard.css"), 1)
    page = page.replace("/*@JS@*/", _asset("dashboard.js"), 1)
    # The data last: nothing it holds is taken for a marker.
    return page.replace("@DATA@", _inline_json(data), 1)
