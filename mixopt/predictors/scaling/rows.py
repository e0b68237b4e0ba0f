"""From finished trials to the laws' rows: one row per evaluation along every run.

A trial's result (``proxies.results.TrainResult.to_dict()``, what workers return) carries the
per-domain validation losses of every evaluation along the run (``evals``, every ``eval_every``
steps, the final step excluded) and at the end (``metrics``), the tokens seen at each, and N
(``n_params``, non-embedding). Evaluations in the first ``EARLY_SHARE`` of a run's tokens are
left out: warmup and the early transient fall faster than any power law in D (as published fits
drop a run's first steps), and fitted with the rest they pull every law's exponents.

``curve_rows`` turns one result into X rows (weights, N, D) and Y rows (one ``val_loss/<domain>``
per domain, in ``domains`` order, or the metrics ``targets`` names, e.g. an eval set's
``val_loss/<eval>``); ``stack_runs`` does it for the finished trials of a search. A mixture is
a ``{domain: weight}`` mapping (``Trial.weights``) or a vector in ``domains`` order. Anything the
laws could not use (a missing loss, a non-finite one, no ``n_params``, a weight on a domain not
in ``domains``) is an error naming the result and the evaluation, never a silent NaN or a
dropped weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixopt.predictors.scaling.base import ScalingDataError

LOSS_PREFIX = "val_loss/"
EARLY_SHARE = 0.25  # evaluations before this share of a run's tokens are not fitted


def late_enough(tokens: Any, run_tokens: Any) -> Any:
    """Whether evaluations at ``tokens`` of a run of ``run_tokens`` are fitted (arrays too)."""
    return np.asarray(tokens, dtype=float) >= EARLY_SHARE * np.asarray(run_tokens, dtype=float)


Mixture = Mapping[str, float] | Sequence[float] | np.ndarray


def mixture_vector(
    weights: Mixture, domains: Sequence[str], *, where: str = "mixture"
) -> np.ndarray:
    """A mixture as a vector (m,) in ``domains`` order."""
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(domains))
        if unknown:
            raise ScalingDataError(
                f"{where} has weight on {', '.join(unknown)}, not among the domains "
                f"({', '.join(domains)})"
            )
        return np.array([float(weights.get(d, 0.0)) for d in domains])
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(domains),):
        raise ScalingDataError(
            f"{where} must have {len(domains)} weights, one per domain "
            f"({', '.join(domains)}); got shape {w.shape}"
        )
    return w


def curve_rows(
    result: Mapping[str, Any],
    weights: Mixture,
    domains: Sequence[str],
    *,
    targets: Sequence[str] | None = None,
    where: str = "result",
) -> tuple[np.ndarray, np.ndarray]:
    """X (k, m + 2) and Y (k, m) for the k fitted evaluations of one run (those past
    ``EARLY_SHARE`` of its tokens), the final one last."""
    missing_keys = [k for k in ("n_params", "tokens", "metrics") if k not in result]
    if missing_keys:
        raise ScalingDataError(f"{where} has no {', '.join(missing_keys)} (a TrainResult dict?)")
    n_params = float(result["n_params"])
    if not n_params > 0:
        raise ScalingDataError(f"{where}: n_params is {result['n_params']}, not a model size > 0")
    w = mixture_vector(weights, domains, where=f"the mixture of {where}")
    points = [
        (e["tokens"], e["metrics"])
        for e in result.get("evals") or []
        if late_enough(e["tokens"], result["tokens"])
    ]
    points.append((result["tokens"], result["metrics"]))
    names = list(targets) if targets is not None else [f"{LOSS_PREFIX}{d}" for d in domains]
    X, Y = [], []
    for tokens, metrics in points:
        missing = [k for k in names if k not in metrics]
        if missing:
            raise ScalingDataError(
                f"{where}: the evaluation at {tokens} tokens has no {missing[0]}; every "
                f"evaluation needs every target ({', '.join(names)})"
            )
        losses = [float(metrics[k]) for k in names]
        if not np.all(np.isfinite(losses)):
            bad = names[int(np.argmin(np.isfinite(losses)))]
            raise ScalingDataError(
                f"{where}: the evaluation at {tokens} tokens has {bad} = {metrics[bad]}"
            )
        X.append([*w, n_params, float(tokens)])
        Y.append(losses)
    return np.array(X), np.array(Y)


def stack_runs(
    results: Sequence[Mapping[str, Any]],
    mixtures: Sequence[Mixture],
    domains: Sequence[str],
    targets: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """X (n, m + 2) and Y (n, t) of many runs: ``results[i]`` trained on ``mixtures[i]``; Y's
    columns are the metrics ``targets`` (default: each domain's ``val_loss/<domain>``)."""
    if not results:
        raise ScalingDataError("no runs to stack: the laws need finished trials")
    if len(results) != len(mixtures):
        raise ScalingDataError(
            f"{len(results)} results but {len(mixtures)} mixtures: one mixture per result"
        )
    parts = [
        curve_rows(result, weights, domains, targets=targets, where=f"result {i}")
        for i, (result, weights) in enumerate(zip(results, mixtures, strict=True))
    ]
    return np.vstack([x for x, _ in parts]), np.vstack([y for _, y in parts])
