"""A study's recommendations at a target scale: a scale-aware law on every result with a scale.

The law is fitted the way ``mixopt predict --params-column --tokens-column`` fits one on a table
(:func:`mixopt.predictors.scaling.tables.scaling_predictor`: ``auto`` is the law that
extrapolates best, held out by ``extrapolation_split``; or one named law). Its rows are the
results told with a scale: the mixture's weights, then N and D (the laws' input convention).

What it fits: when the objective is a positive weighted sum of two or more metrics, each metric
is a target of its own and the objective's weights are the law's ``target_weights`` — and a
metric that names one domain (``val_loss/web`` or ``web``) is that domain's own loss, so its law
gets the domain's own data term and the optimum can move with scale (a slow-learning domain is
worth more tokens at a larger D); any other metric (an eval set) learns which domains feed it.
Otherwise the objective value itself is the one target.
Laws model a loss that falls with N and D, so target-scale answers need a study that minimises
positive values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.study.records import OUTSIDE_L1, Best, Result, Scale, Suggestion


def law_columns(objective: Mapping[str, float], domains: Sequence[str]) -> list[str] | None:
    """The metrics the law fits, in order (the domains' order when each names one domain);
    None: fit the objective value itself."""
    names = list(objective)
    if len(names) < 2 or any(w <= 0 for w in objective.values()):
        return None
    owner = {d: [n for n in names if n == d or n.endswith(f"/{d}")] for d in domains}
    if len(names) == len(domains) and all(len(found) == 1 for found in owner.values()):
        ordered = [owner[d][0] for d in domains]
        if len(set(ordered)) == len(domains):
            return ordered
    return names


def column_domains(columns: Sequence[str], domains: Sequence[str]) -> list[int | None]:
    """The training domain each column is the loss of (None: no single domain)."""
    out: list[int | None] = []
    for name in columns:
        found = [i for i, d in enumerate(domains) if name == d or name.endswith(f"/{d}")]
        out.append(found[0] if len(found) == 1 else None)
    return out


def scaled_rows(
    suggestions: Sequence[Suggestion], domains: Sequence[str], columns: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[tuple[Suggestion, Result]]]:
    """X (n, m + 2), Y (n, t) and the (suggestion, result) of each row with a scale."""
    rows, targets, told = [], [], []
    for s in suggestions:
        for r in s.results:
            if r.scale is None:
                continue
            values = [r.objective] if columns is None else [r.metrics[c] for c in columns]
            if not all(np.isfinite(v) and v > 0 for v in values):
                what = "objective" if columns is None else f"metrics {columns}"
                raise MixoptError(
                    f"{s.mixture_id} at {r.scale}: the {what} must be finite and > 0 for a "
                    f"scaling law (a loss), got {values}"
                )
            rows.append([*(s.weights[d] for d in domains), r.params, r.tokens])
            targets.append(values)
            told.append((s, r))
    X = np.array(rows, dtype=float).reshape(-1, len(domains) + 2)
    Y = np.array(targets, dtype=float).reshape(len(rows), 1 if columns is None else len(columns))
    return X, Y, told


def fit_law(
    law: str,
    suggestions: Sequence[Suggestion],
    domains: Sequence[str],
    objective: Mapping[str, float],
    *,
    why: str,
) -> tuple[Any, list[tuple[Suggestion, Result]]]:
    """The fitted law and the results it rests on; errors say what the study lacks."""
    from mixopt.predictors.scaling.tables import scaling_predictor

    columns = law_columns(objective, domains)
    X, Y, told = scaled_rows(suggestions, domains, columns)
    scales = sorted({r.scale.key() for _, r in told if r.scale is not None})
    if len(scales) < 2:
        raise MixoptError(
            f"{why} needs results at 2 or more scales (tell params= and tokens= with each "
            f"result; 3 model sizes or more extrapolate best); the study has {len(scales)}"
            + (f" ({Scale(*scales[0])})" if scales else "")
        )
    if columns is None:
        model = scaling_predictor(law, [1.0], [None])
    else:
        weights = [objective[c] for c in columns]
        model = scaling_predictor(law, weights, column_domains(columns, domains))
    return model.fit(X, Y), told


def law_method(law: str, model: Any) -> str:
    if hasattr(model, "choice_"):
        return f"{model.choice_} scaling law (weighed by extrapolation: {model.split_})"
    return f"{law} scaling law"


def best_at(
    law: str,
    suggestions: Sequence[Suggestion],
    space: Any,
    objective: Mapping[str, float],
    target: Scale,
    *,
    seed: int,
) -> Best:
    """The mixture with the lowest objective the law predicts at ``target``."""
    from mixopt.predictors.scaling.target import optimal_mixture_at

    domains = list(space.domains)
    model, told = fit_law(law, suggestions, domains, objective, why=f"best(target: {target})")
    opt = optimal_mixture_at(model, space, target.params, target.tokens, seed=seed)
    mixtures = list({id(s): s for s, _ in told}.values())
    W = np.array([[s.weights[d] for d in domains] for s in mixtures])
    distance = np.abs(W - opt.weights).sum(axis=1)
    nearest = []
    for i in np.argsort(distance)[:3]:
        headline = mixtures[i].result
        assert headline is not None
        nearest.append(
            {
                "mixture_id": mixtures[i].mixture_id,
                "objective": headline.objective,
                "params": headline.params,
                "tokens": headline.tokens,
                "l1_distance": float(distance[i]),
            }
        )
    return Best(
        weights=space.as_dict(opt.weights),
        predicted=opt.predicted,
        predicted_std=opt.predicted_std,
        method=f"{law_method(law, model)} at {target}",
        supported_by=[s.mixture_id for s in mixtures],
        nearest=nearest,
        outside_data=bool(distance.min() > OUTSIDE_L1),
        params=target.params,
        tokens=target.tokens,
    )


def predicted_at(
    law: str,
    suggestions: Sequence[Suggestion],
    domains: Sequence[str],
    objective: Mapping[str, float],
    target: Scale,
) -> tuple[list[Suggestion], np.ndarray]:
    """Every mixture told at some scale, and the law's objective for it at ``target``."""
    from mixopt.predictors.scaling.target import predict_at

    model, told = fit_law(law, suggestions, domains, objective, why=f"ask at target {target}")
    mixtures = list({id(s): s for s, _ in told}.values())
    W = np.array([[s.weights[d] for d in domains] for s in mixtures])
    return mixtures, np.asarray(predict_at(model, W, target.params, target.tokens), dtype=float)
