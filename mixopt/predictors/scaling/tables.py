"""Scale-aware laws on users' run tables: rows at their own model size and token count.

A table of past runs at several sizes (e.g. RegMix's 1M/60M/1B runs, or a team's own ladder)
names a column of non-embedding parameters N and one of training tokens D beside the weight
columns; :func:`scaled_rows` makes the laws' input (weights, N, D) from it, and
:func:`scaling_predictor` is the law to fit (``auto``: the one that extrapolates best).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.predictors.scaling.base import ScalingDataError

if TYPE_CHECKING:
    import pandas as pd


def scaled_rows(
    weights: pd.DataFrame, frame: pd.DataFrame, params: str, tokens: str, *, source: str
) -> np.ndarray:
    """X (n, m + 2): the weight columns, then N and D from the named columns."""
    columns = []
    for name, what in ((params, "model size"), (tokens, "training tokens")):
        if name not in frame.columns:
            raise ScalingDataError(f"{source}: no {what} column {name!r}")
        values = frame[name].to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if len(bad):
            raise ScalingDataError(
                f"{source}: column {name!r} ({what}) must be finite and > 0; row {int(bad[0])} "
                f"has {values[bad[0]]}"
            )
        columns.append(values)
    return np.column_stack([weights.to_numpy(dtype=float), *columns])


def scaling_predictor(
    name: str,
    target_weights: Sequence[float] | None = None,
    target_domains: Sequence[int | None] | None = None,
) -> Any:
    """``auto``: the law chosen by extrapolation; or one named law. Its targets are weighted
    by ``target_weights`` (default: equally) and ``target_domains`` says which training domain
    each target is the loss of (see :class:`~mixopt.predictors.scaling.ScalingObjective`)."""
    from mixopt.predictors.scaling.objective import LAW_NAMES, make_law
    from mixopt.predictors.scaling.select import ScalingLawSelector

    if name == "auto":
        return ScalingLawSelector(target_weights=target_weights, target_domains=target_domains)
    if name not in LAW_NAMES:
        raise ScalingDataError(
            f"unknown scale-aware law {name!r} for a table with sizes and tokens; "
            f"available: auto, {', '.join(LAW_NAMES)}"
        )
    return make_law(name, target_weights, target_domains)
