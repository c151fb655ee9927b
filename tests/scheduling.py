"""How ``make test`` spreads the suite over pytest-xdist workers (``--dist loadfile``).

Each test file runs whole, in definition order, on one worker: module- and class-scoped
fixtures assume it (the hostile-input differential builds one store per case group and
compares ids that depend on the cases that ran before in that store). The browser files
are one unit too, so one Chromium and one UI server per backend serve them all.

Markers cannot say this: ``--dist loadgroup`` reads ``xdist_group`` markers before a
conftest's ``pytest_collection_modifyitems`` adds them, so such a group is silently
spread over every worker like ``--dist load``.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

#: Files whose tests share session fixtures too costly to start once per file.
SHARED_UNITS = ("tests/browser/",)


class FileScheduling(LoadFileScheduling):
    """``--dist loadfile`` with each folder of ``SHARED_UNITS`` as one unit."""

    def _split_scope(self, nodeid: str) -> str:
        path = super()._split_scope(nodeid)
        return next((unit for unit in SHARED_UNITS if path.startswith(unit)), path)
