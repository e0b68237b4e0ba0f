"""The recommendation at the target scale: a scale-aware law fitted on every search trial.

With ``target.params`` and ``target.tokens`` set, every finished search trial (each rung of the
ladder, every evaluation along its curve) becomes rows (mixture, N, D) → per-domain losses, and
:class:`~mixopt.predictors.scaling.ScalingLawSelector` weighs the laws by how well each
extrapolates. That law predicts each mixture's losses at the target, with a bootstrap interval,
and its optimum there is the recommendation. The optimum is shrunk toward the natural mixture
(Olmix's KL term) as far as the law cannot tell the difference: the largest strength whose
mixture is predicted within one standard deviation of the unshrunk optimum, the deviation of
their *difference* over the law's bootstrap fits (the level both share is far less certain than
the gap between them when the target is far above the proxies). A mixture far from every trial
or at the simplex's edge is flagged, since the law is extrapolating there.

:func:`curves` predicts each mixture at a few model sizes from the search proxy's to the
target's, for the report's objective-vs-N figure. After validation, :func:`calibration` compares
what the law predicted at the validation proxy's size and tokens with what was measured, and the
rank transfer from the search proxy's scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.trials import Stage, Trial, TrialStatus

if TYPE_CHECKING:
    from mixopt.proposers.base import Recommendation
    from mixopt.search.problem import SearchProblem
    from mixopt.spec import ProxySpec

SHRINK_STRENGTHS = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
EDGE_WEIGHT = 1e-3  # a weight below this on a domain with natural share >= 1% is "at the edge"
FAR_L1 = 0.5  # an L1 distance to the nearest trial above this is "outside the data"
CURVE_POINTS = 8  # model sizes at which ``curves`` predicts each mixture


@dataclass
class TargetModel:
    """A law fitted on the search's trials, in leaf weights, and what it was fitted on."""

    law: Any  # a fitted ScalingLawSelector
    weights: np.ndarray  # (t,) objective weights over the targets
    trials: list[Trial]
    note: str
    targets: list[str]  # the metrics the law models (val_loss of domains or eval sets)

    def predict(
        self, W: np.ndarray, n_params: float, tokens: float
    ) -> tuple[np.ndarray, np.ndarray]:
        from mixopt.predictors.scaling import predict_at

        mean, std = predict_at(self.law, W, n_params, tokens, return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    def gap_std(
        self, w: np.ndarray, reference: np.ndarray, n_params: float, tokens: float
    ) -> float:
        """The standard deviation of the predicted difference between two mixtures over the
        law's bootstrap fits: what the law can tell apart, without the uncertainty of the level
        it shares between them (the same fits predict both)."""
        from mixopt.predictors.scaling import at_scale

        boot = np.asarray(
            self.law.predict_boot(at_scale(np.vstack([w, reference]), n_params, tokens))
        )
        if boot.ndim != 2 or len(boot) < 2:
            return float(self.predict(w[None], n_params, tokens)[1][0])
        return float(np.std(boot[:, 0] - boot[:, 1], ddof=1))

    def losses(self, w: np.ndarray, n_params: float, tokens: float) -> np.ndarray:
        from mixopt.predictors.scaling import at_scale

        return np.asarray(self.law.predict_targets(at_scale(w, n_params, tokens)))[0]


@dataclass(frozen=True)
class Targets:
    """What the laws model for an objective: the metrics, the objective's weight on each, and
    the training domain each is the loss of (None: an eval set)."""

    names: list[str]
    weights: np.ndarray  # (t,)
    domains: list[int | None] | None  # None: every domain's loss, in order (all laws apply)


def objective_targets(problem: SearchProblem) -> Targets | None:
    """The objective as weights over validation losses: every domain's when it names only
    domains (zero weight on the others), else the metrics it names, domains and eval sets
    alike. None when it names any other metric (the laws model validation losses only)."""
    prefix = "val_loss/"
    own = {f"{prefix}{d}": i for i, d in enumerate(problem.domains)}
    metrics = problem.objective_weights
    if any(not m.startswith(prefix) for m in metrics):
        return None
    if all(m in own for m in metrics):
        weights = np.zeros(len(own))
        for metric, weight in metrics.items():
            weights[own[metric]] = weight
        return Targets(list(own), weights, None)
    names = list(metrics)
    return Targets(names, np.array([metrics[k] for k in names]), [own.get(k) for k in names])


def fit(problem: SearchProblem, trials: list[Trial]) -> TargetModel | str:
    """The law, or a sentence saying why there is none."""
    from mixopt.predictors.scaling import ScalingDataError, ScalingLawSelector
    from mixopt.predictors.scaling.rows import stack_runs

    targets = objective_targets(problem)
    if targets is None:
        return "the objective names metrics other than validation losses"
    if not problem.hierarchy.trivial:
        return "a grouped search keeps within-group shares the laws do not model"
    if problem.spec.stages:
        return "the laws model one mixture throughout training, not a schedule of stages"
    done = [
        t
        for t in trials
        if t.stage is Stage.SEARCH
        and t.status is TrialStatus.COMPLETED
        and np.isfinite(t.result.get("objective", np.nan))
    ]
    if len(done) < 4:
        return f"{len(done)} finished search trials; the laws need at least 4"
    try:
        X, Y = stack_runs(
            [t.result for t in done], [t.weights for t in done], problem.domains, targets.names
        )
        law = ScalingLawSelector(
            target_weights=targets.weights.tolist(),
            random_state=problem.spec.search.seed,
            target_domains=targets.domains,
        )
        law.fit(X, Y)
    except (ScalingDataError, FloatingPointError, np.linalg.LinAlgError) as error:
        return f"no scale-aware law fits the trials: {error}"
    sizes = sorted({int(t.result["n_params"]) for t in done})
    note = (
        f"{law.choice_} law on {len(X)} evaluations of {len(done)} trials at "
        f"{len(sizes)} model size(s); {law.split_}"
    )
    return TargetModel(law, targets.weights, done, note, targets.names)


def recommend(problem: SearchProblem, model: TargetModel) -> dict[str, Any]:
    """The mixture best at the target, shrunk toward natural as far as the law cannot tell,
    with its predicted losses and objective there (mean and standard deviation)."""
    from mixopt.predictors.scaling import optimal_mixture_at

    target = problem.spec.target
    assert target.params is not None and target.tokens is not None
    n, d = float(target.params), float(target.tokens)
    natural = problem.space.project(problem.natural())[0]
    rng = np.random.default_rng([problem.spec.search.seed, 16])
    pool = problem.sampler.candidates(5000, rng)
    options = []
    for strength in SHRINK_STRENGTHS:
        law = _Shrunk(model.law, natural, strength) if strength else model.law
        found = optimal_mixture_at(law, problem.space, n, d, candidates=pool, seed=0)
        mean, std = model.predict(found.weights[None], n, d)
        options.append((strength, found.weights, float(mean[0]), float(std[0])))
    best = options[0]
    chosen = max(
        (o for o in options if o[2] <= best[2] + model.gap_std(o[1], best[1], n, d)),
        key=lambda o: o[0],
        default=best,
    )
    return {
        "weights": chosen[1],
        "predicted": chosen[2],
        "predicted_std": chosen[3],
        "shrink": chosen[0],
        "unshrunk": {"weights": problem.space.as_dict(best[1]), "predicted": best[2]},
        "flags": _flags(problem, chosen[1], model.trials),
    }


def at_target(
    problem: SearchProblem,
    model: TargetModel,
    proxy: Recommendation,
    told: list[Trial],
    search_proxy: ProxySpec,
) -> tuple[Recommendation, dict[str, Any]]:
    """The recommendation at the target (its evidence: every told trial), and the
    ``target_scale`` section of recommendation.json (without the calibration, which comes after
    validation)."""
    from mixopt.proposers.base import Recommendation

    target = problem.spec.target
    found = recommend(problem, model)
    X = np.array([problem.weights(t) for t in told])
    nearest = np.argsort(np.abs(X - found["weights"]).sum(axis=1))[:5]
    recommendation = Recommendation(
        weights=found["weights"],
        predicted=found["predicted"],
        predicted_std=found["predicted_std"],
        evidence=list(range(len(told))),
        nearest=[int(i) for i in nearest],
        method=f"target scale: {model.note}",
    )
    mixtures = {
        "recommended": found["weights"],
        "proxy_optimum": proxy.weights,
        "natural": problem.baseline("natural"),
        "uniform": problem.baseline("uniform"),
    }
    section = {
        "available": True,
        "params": target.params,
        "tokens": target.tokens,
        "law": model.law.choice_,
        "fitted_on": model.note,
        "scores": model.law.scores_,
        "shrink": found["shrink"],
        "unshrunk": found["unshrunk"],
        "flags": found["flags"],
        "mixtures": describe(problem, model, mixtures, search_proxy),
        "curves": curves(
            model,
            mixtures,
            search_proxy.size(),
            (float(target.params or 0), float(target.tokens or 0)),
        ),
    }
    return recommendation, section


def describe(
    problem: SearchProblem,
    model: TargetModel,
    mixtures: dict[str, np.ndarray],
    search_proxy: ProxySpec,
) -> dict[str, Any]:
    """Each mixture's predicted objective and losses at the target and at the search proxy."""
    target = problem.spec.target
    n, d = float(target.params or 0), float(target.tokens or 0)
    n_proxy, d_proxy = search_proxy.size()
    out = {}
    for label, w in mixtures.items():
        mean, std = model.predict(w[None], n, d)
        at_proxy, _ = model.predict(w[None], n_proxy, d_proxy)
        losses = model.losses(w, n, d)
        out[label] = {
            "weights": problem.space.as_dict(w),
            "objective": float(mean[0]),
            "objective_std": float(std[0]),
            "objective_at_proxy": float(at_proxy[0]),
            "losses": {k: float(v) for k, v in zip(model.targets, losses, strict=True)},
        }
    return out


def curves(
    model: Any,
    mixtures: dict[str, np.ndarray],
    start: tuple[float, float],
    end: tuple[float, float],
    points: int = CURVE_POINTS,
) -> dict[str, Any]:
    """Each mixture's predicted objective (mean and std) along the way from the search proxy's
    (N, D) ``start`` to the target's ``end``: ``points`` model sizes N log-spaced between the
    two, each with tokens D at the same place between the two token budgets on a log scale (D
    scales with N as it does from proxy to target). ``model``: anything with
    ``predict(W, n_params, tokens) -> (mean, std)``, as :class:`TargetModel`."""
    (n0, d0), (n1, d1) = start, end
    if min(n0, d0, n1, d1) <= 0:
        raise MixoptError(
            f"scale curves: model sizes and tokens must be positive (proxy N={n0:g}, D={d0:g}; "
            f"target N={n1:g}, D={d1:g})"
        )
    if points < 2:
        raise MixoptError(f"scale curves: points must be at least 2, not {points}")
    sizes = np.geomspace(n0, n1, points)
    tokens = np.geomspace(d0, d1, points)
    objective: dict[str, list[float]] = {}
    spread: dict[str, list[float]] = {}
    for label, w in mixtures.items():
        W = np.asarray(w, dtype=float)[None]
        predicted = [
            model.predict(W, float(n), float(d)) for n, d in zip(sizes, tokens, strict=True)
        ]
        objective[label] = [float(np.asarray(mean)[0]) for mean, _ in predicted]
        spread[label] = [float(np.asarray(std)[0]) for _, std in predicted]
    return {
        "params": sizes.tolist(),
        "tokens": tokens.tolist(),
        "objective": objective,
        "objective_std": spread,
    }


def calibration(
    problem: SearchProblem,
    model: TargetModel,
    validation: dict[str, Any],
    validation_proxy: ProxySpec,
    search_proxy: ProxySpec,
) -> dict[str, Any]:
    """Predicted vs measured at the validation proxy; rank transfer from the search scale."""
    from scipy.stats import spearmanr

    n_val, d_val = validation_proxy.size()
    n_proxy, d_proxy = search_proxy.size()
    rows = []
    for label, summary in validation.items():
        observed = summary.get("objective")
        if observed is None or summary.get("chosen_from"):  # measured under its own label
            continue
        w = np.array([summary["weights"][dom] for dom in problem.domains])
        predicted, std = model.predict(w[None], n_val, d_val)
        at_proxy, _ = model.predict(w[None], n_proxy, d_proxy)
        rows.append(
            {
                "label": label,
                "predicted": float(predicted[0]),
                "predicted_std": float(std[0]),
                "observed": float(observed),
                "at_search_scale": float(at_proxy[0]),
            }
        )
    if not rows:
        return {}
    predicted = np.array([r["predicted"] for r in rows])
    observed = np.array([r["observed"] for r in rows])
    search = np.array([r["at_search_scale"] for r in rows])
    out: dict[str, Any] = {
        "scale": {"params": n_val, "tokens": d_val},
        "mixtures": rows,
        "mape": float(np.mean(np.abs(predicted - observed) / np.abs(observed))),
    }
    if len(rows) >= 3:
        out["spearman_law"] = float(spearmanr(predicted, observed).statistic)
        out["spearman_search_scale"] = float(spearmanr(search, observed).statistic)
    return out


def _flags(problem: SearchProblem, w: np.ndarray, trials: list[Trial]) -> list[str]:
    flags = []
    X = np.array([problem.weights(t) for t in trials])
    nearest = float(np.abs(X - w).sum(axis=1).min())
    if nearest > FAR_L1:
        flags.append(f"far from every trial (nearest L1 distance {nearest:.2f})")
    natural = problem.natural()
    starved = [
        dom
        for dom, wi, pi in zip(problem.domains, w, natural, strict=True)
        if wi < EDGE_WEIGHT and pi >= 0.01
    ]
    if starved:
        flags.append(f"at the simplex's edge: {', '.join(starved)} nearly starved")
    return flags


class _Shrunk:
    """A law's objective plus ``strength`` x KL(w || natural) (Olmix's prior term)."""

    def __init__(self, law: Any, natural: np.ndarray, strength: float) -> None:
        self.law, self.natural, self.strength = law, np.clip(natural, 1e-12, None), strength

    def predict(self, X: np.ndarray, return_std: bool = False) -> Any:
        W = np.clip(np.asarray(X)[:, :-2], 1e-12, None)
        kl = (W * np.log(W / self.natural)).sum(axis=1)
        return np.asarray(self.law.predict(X)) + self.strength * kl
