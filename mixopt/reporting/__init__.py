"""What the dashboard and the HTML report show, computed once from a job's files.

``load_job_dir(path)`` reads a job directory into a :class:`~mixopt.reporting.jobdata.JobData`
(spec, runs table, recommendation, status, trial results, MLflow run ids);
``build_views(job)`` turns it into the view model: every number and every figure (as a Plotly
figure dict) of every view. The dashboard serves that model as JSON, ``mixopt report`` inlines it
into one HTML file; both draw it with the same script (``assets/views.js``), so a number on the
page is the number computed here.

Nothing heavy is imported by ``import mixopt.reporting``: pandas when a job is loaded, the
predictors (torch) when the predictor views are computed, matplotlib only for PNGs.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "JobData": "mixopt.reporting.jobdata",
    "load_job_dir": "mixopt.reporting.jobdata",
    "find_job_dirs": "mixopt.reporting.jobdata",
    "build_views": "mixopt.reporting.views",
    "ViewOptions": "mixopt.reporting.views",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixopt.reporting' has no attribute {name!r}")
