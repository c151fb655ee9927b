"""Local disk caches of immutable bucket objects: metric segments and the histories
sorted from them, and where such caches (and the query index) live by default.

A segment's bytes never change, so its cached copy is valid forever; the caches are
bounded, shared between processes and disposable (``segment_files``). No MLflow here.
"""

from __future__ import annotations

__all__: list[str] = []
