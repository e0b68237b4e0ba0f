"""``Study``: the mixture brain as ask/tell, for teams who train the models themselves.

No proxies, no Ray, no MLflow: ask for mixtures, train them however you train, tell the metrics
back, ask again, and take ``best()``. Past runs import as they are (``add``). A study is one JSON
file (``save``/``load``), so it survives between sessions and can be shared.

    study = Study(["web", "code", "math"], objective="val_loss", strategy="bo")
    for suggestion in study.ask(4):
        study.tell(suggestion.mixture_id, {"val_loss": train_and_eval(suggestion.weights)})
    print(study.best().weights)

Until ``initial`` mixtures have results, ``ask`` draws from RegMix's Dirichlet sampler around
the natural distribution (uniform unless given); after that the strategy's proposer (the one a
job runs, from the strategy registry) proposes. A study has one objective and no fidelities, so
its strategies are the registered ones that need neither fidelities nor constraints.

Scales. ``tell``/``add`` may name the model size N (``params``, non-embedding parameters) and
training tokens D (``tokens``) of a result, and one mixture may be told at several scales (a
ladder). A study's results either all have a scale or none has. Then:

- ``best(target={"params": N, "tokens": D})`` (or the study's ``target=``): the optimum at the
  target of a scale-aware law fitted on every result with a scale (needs 2 scales or more).
- ``best()`` with no target (and none set) answers at the *reference scale*: the largest told
  scale (N, then D) with at least 2 results, from the strategy's model on those results alone.
- ``ask`` after ``initial`` results: with a target set and results at 2 scales or more, the
  proposer is told the law's objective at the target for every mixture told at some scale;
  otherwise it sees the results at the largest scale that has ``initial`` of them (until one
  has, ``ask`` keeps drawing the initial design).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers import Recommendation, make_proposer
from mixopt.proposers.registry import DEFAULT_STRATEGY, STRATEGIES, strategy_names
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.study import storage
from mixopt.study.pending import keep_apart, tell_with_pending
from mixopt.study.records import (
    OUTSIDE_L1,
    Best,
    Observed,
    Result,
    Scale,
    Suggestion,
    as_target,
    best_told,
    check_law,
    normalised,
    objective_of,
    scale_of,
)

DEFAULT_LAW = "auto"


class Study:
    def __init__(
        self,
        domains: Sequence[str],
        *,
        objective: str | Mapping[str, float] = "objective",
        direction: str = "minimize",
        strategy: str = DEFAULT_STRATEGY,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        fixed: Mapping[str, float] | None = None,
        natural: Mapping[str, float] | None = None,
        initial: int = 8,
        seed: int = 0,
        name: str = "study",
        target: Scale | Mapping[str, float] | tuple[float, float] | None = None,
        law: str = DEFAULT_LAW,
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise MixoptError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        valid = study_strategies()
        if strategy not in valid:
            needs = [
                f"{s.name} needs {'fidelities' if s.needs_fidelities else 'constraints'}"
                for s in STRATEGIES.values()
                if s.name not in valid
            ]
            raise MixoptError(
                f"unknown strategy {strategy!r} for a study; available: {', '.join(valid)} "
                f"({' and '.join(needs)}: run them from a job spec)"
            )
        if initial < 2:
            raise MixoptError("initial must be at least 2")
        self.space = MixtureSpace.from_bounds(list(domains), bounds or {}, fixed or {})
        self.objective = {objective: 1.0} if isinstance(objective, str) else dict(objective)
        if not self.objective:
            raise MixoptError("objective needs at least one metric")
        self.direction = direction
        self.strategy = strategy
        self.bounds = {d: (float(lo), float(hi)) for d, (lo, hi) in (bounds or {}).items()}
        self.fixed = dict(fixed or {})
        self.natural = dict(natural) if natural else {d: 1.0 / len(domains) for d in domains}
        self.initial = initial
        self.seed = seed
        self.name = name
        self.target = as_target(target)
        if self.target is not None:
            self._check_scalable("a target scale")
        self.law = law
        check_law(law)
        self.suggestions: dict[str, Suggestion] = {}
        self.queue: list[dict[str, float]] = []  # enqueued mixtures the next asks return
        self._asks = 0

    @property
    def domains(self) -> list[str]:
        return list(self.space.domains)

    @property
    def scaled(self) -> bool | None:
        """Whether the study's results carry scales (None before the first result)."""
        for s in self.suggestions.values():
            for r in s.results:
                return r.scale is not None
        return None

    def scales(self) -> list[Scale]:
        """The distinct scales told, smallest first (N, then D)."""
        found = {r.scale for s in self.suggestions.values() for r in s.results if r.scale}
        return sorted(found, key=Scale.key)

    # ------------------------------------------------------------------------------ ask/tell

    def ask(self, n: int = 1) -> list[Suggestion]:
        """``n`` mixtures to train: enqueued ones first, then new ones, none equal to a mixture
        the study knows nor near a pending one (see ``mixopt.study.pending``)."""
        if n < 1:
            raise MixoptError("ask needs n >= 1")
        self._asks += 1
        out = [self._suggest(weights, "enqueued") for weights in self.queue[:n]]
        del self.queue[: len(out)]
        if len(out) < n:
            X, y = self._ask_observations()
            pending = self._rows(self.pending())
            rng = np.random.default_rng([self.seed, self._asks])
            sampler = self._sampler()
            if len(y) < self.initial:
                rows = sampler.sample(n - len(out), rng, exclude=self._known())
            else:
                proposer = make_proposer(self.strategy, sampler, seed=self.seed + self._asks)
                given = tell_with_pending(proposer, X, y, pending)
                rows = proposer.ask(n - len(out), pending=given)
            rows = keep_apart(rows, pending, sampler, rng, known=self._known())
            out += [self._suggest(self.space.as_dict(row), "asked") for row in rows]
        return out

    def enqueue(self, weights: Mapping[str, float]) -> None:
        """Have the next ``ask`` return this mixture (e.g. the production mix) before any new
        one; enqueued mixtures come out in the order they went in."""
        vector = self.space.check(normalised(weights), source="enqueue")
        if not self.space.contains(vector[None])[0]:
            raise MixoptError(f"enqueue: {weights} is outside the study's bounds {self.bounds}")
        self.queue.append(self.space.as_dict(vector))

    def fail(self, mixture_id: str, reason: str = "failed") -> None:
        """Mark an asked mixture's run as failed: no longer pending, not an observation (a later
        ``tell``, from a retry that worked, makes it done)."""
        suggestion = self._get(mixture_id)
        if suggestion.results:
            raise MixoptError(f"fail({mixture_id!r}): it has results; only a pending one can fail")
        suggestion.failed = str(reason) or "failed"

    def pending(self) -> list[Suggestion]:
        """The mixtures asked and not yet told (nor failed)."""
        return [s for s in self.suggestions.values() if s.state == "pending"]

    def tell(
        self,
        mixture_id: str,
        metrics: Mapping[str, float] | float,
        *,
        params: float | None = None,
        tokens: float | None = None,
    ) -> float:
        """Report the result of an asked mixture (at model size ``params`` N and ``tokens`` D,
        if the study tracks scales); returns its objective value. Telling a mixture again at the
        same scale replaces that result; at another scale, adds one."""
        suggestion = self._get(mixture_id)
        result = self._result(metrics, params, tokens, where=f"tell({mixture_id!r})")
        suggestion.record(result)
        return result.objective

    def add(
        self,
        weights: Mapping[str, float],
        metrics: Mapping[str, float] | float,
        *,
        params: float | None = None,
        tokens: float | None = None,
    ) -> str:
        """Import a finished run (a mixture trained elsewhere); returns its mixture id. A run
        with a scale joins an imported or asked mixture of the same weights that has no result
        at that scale yet (a ladder's rungs are one mixture)."""
        vector = self.space.check(normalised(weights), source="added run")
        result = self._result(metrics, params, tokens, where="add")
        same = [
            s
            for s in self.suggestions.values()
            if result.scale is not None
            and s.result_at(result.scale) is None
            and np.allclose([s.weights[d] for d in self.domains], vector, rtol=0, atol=1e-9)
        ]
        if same:
            same[0].record(result)
            return same[0].mixture_id
        suggestion = Suggestion(self._next_id(), self.space.as_dict(vector), source="imported")
        suggestion.record(result)
        self.suggestions[suggestion.mixture_id] = suggestion
        return suggestion.mixture_id

    def best(self, target: Scale | Mapping[str, float] | tuple[float, float] | None = None) -> Best:
        """The recommended mixture. At a ``target`` scale (default: the study's), the optimum of
        a scale-aware law fitted on every result with a scale; without one, the strategy's
        model optimum on the results at the reference scale (see the module docstring)."""
        goal = as_target(target) or self.target
        if goal is not None:
            from mixopt.study.scale import best_at

            self._check_scalable("best(target=...)")
            suggestions = list(self.suggestions.values())
            return best_at(self.law, suggestions, self.space, self.objective, goal, seed=self.seed)
        told, scale = self._reference(2)
        X, y = self._matrix(told)
        if len(y) < 2:
            where = f" at any one scale (largest: {self.scales()[-1]})" if scale else ""
            raise MixoptError(f"best() needs at least 2 results{where}, the study has {len(y)}")
        proposer = make_proposer(self.strategy, self._sampler(), seed=self.seed)
        proposer.tell(X, y)
        rec = proposer.recommend()
        sign = 1.0 if self.direction == "minimize" else -1.0
        return Best(
            weights=self.space.as_dict(rec.weights),
            predicted=sign * rec.predicted,
            predicted_std=rec.predicted_std,
            method=rec.method,
            supported_by=[told[i][0].mixture_id for i in rec.evidence],
            nearest=[
                {
                    "mixture_id": told[i][0].mixture_id,
                    "objective": told[i][1].objective,
                    "l1_distance": float(np.abs(X[i] - rec.weights).sum()),
                }
                for i in rec.nearest
            ],
            outside_data=outside_data(rec, X),
            params=None if scale is None else scale.params,
            tokens=None if scale is None else scale.tokens,
        )

    def best_observed(self, scale: Scale | Mapping[str, float] | None = None) -> Observed:
        """The best result told (at ``scale``; default: the largest scale told), as trained."""
        at = as_target(scale, where="best_observed(scale=...)")
        found = best_told(list(self.suggestions.values()), self.direction, at)
        if found is None:
            raise MixoptError(f"best_observed(): no result told{f' at {at}' if at else ''}")
        return found

    def trials(self) -> list[dict[str, Any]]:
        """Every result with its mixture's weights, metrics and objective (for a DataFrame);
        a mixture without a result is one row with objective None."""
        rows: list[dict[str, Any]] = []
        for s in self.suggestions.values():
            base: dict[str, Any] = {"mixture_id": s.mixture_id, "source": s.source}
            base |= {"state": s.state} | ({"failed": s.failed} if s.failed else {})
            weights = {f"weight/{d}": w for d, w in s.weights.items()}
            if not s.results:
                rows.append(base | {"objective": None} | weights)
            for r in s.results:
                scale: dict[str, Any] = (
                    {} if r.scale is None else {"params": r.params, "tokens": r.tokens}
                )
                rows.append(base | {"objective": r.objective} | scale | weights | r.metrics)
        return rows

    # ---------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        return storage.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Study:
        return storage.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the study as JSON, atomically (see ``StudyFile`` for shared files)."""
        storage.save(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        return storage.load(path)

    # ------------------------------------------------------------------------------- helpers

    def _sampler(self) -> DirichletSampler:
        natural = np.array([self.natural.get(d, 0.0) for d in self.domains])
        return DirichletSampler(self.space, natural)

    def _known(self) -> np.ndarray | None:
        return self._rows(list(self.suggestions.values())) if self.suggestions else None

    def _rows(self, suggestions: Sequence[Suggestion]) -> np.ndarray:
        rows = [[s.weights[d] for d in self.domains] for s in suggestions]
        return np.array(rows, dtype=float).reshape(-1, len(self.domains))

    def _get(self, mixture_id: str) -> Suggestion:
        if mixture_id not in self.suggestions:
            raise MixoptError(f"unknown mixture id {mixture_id!r}")
        return self.suggestions[mixture_id]

    def _suggest(self, weights: dict[str, float], source: str) -> Suggestion:
        suggestion = Suggestion(self._next_id(), weights, source)
        self.suggestions[suggestion.mixture_id] = suggestion
        return suggestion

    def _reference(self, minimum: int) -> tuple[list[tuple[Suggestion, Result]], Scale | None]:
        """The results a scale-blind model sees: all of them in a study without scales, else
        those at the largest scale with at least ``minimum`` results (none: the largest's)."""
        done = [s for s in self.suggestions.values() if s.done]
        if not self.scaled:
            return [(s, s.results[-1]) for s in done], None
        at = {scale: [(s, r) for s in done if (r := s.result_at(scale))] for scale in self.scales()}
        enough = [scale for scale, told in at.items() if len(told) >= minimum]
        scale = enough[-1] if enough else self.scales()[-1]
        return at[scale], scale

    def _matrix(self, told: list[tuple[Suggestion, Result]]) -> tuple[np.ndarray, np.ndarray]:
        sign = 1.0 if self.direction == "minimize" else -1.0
        X = np.array([[s.weights[d] for d in self.domains] for s, _ in told])
        y = np.array([sign * r.objective for _, r in told])
        return X.reshape(-1, len(self.domains)), y

    def _ask_observations(self) -> tuple[np.ndarray, np.ndarray]:
        sizes = {scale.params for scale in self.scales()}
        if self.target is not None and self.scaled and len(sizes) >= 2:
            from mixopt.study.scale import predicted_at

            suggestions = list(self.suggestions.values())
            mixtures, y = predicted_at(
                self.law, suggestions, self.domains, self.objective, self.target
            )
            return np.array([[s.weights[d] for d in self.domains] for s in mixtures]), y
        return self._matrix(self._reference(self.initial)[0])

    def _result(
        self, metrics: Mapping[str, float] | float, params: Any, tokens: Any, *, where: str
    ) -> Result:
        scale = scale_of(params, tokens, where=where)
        scaled = self.scaled
        if scaled is not None and scaled != (scale is not None):
            raise MixoptError(
                f"{where}: this study's results have "
                + (
                    "a scale; give params= and tokens= with every result"
                    if scaled
                    else "no scale (model size, tokens); start a new study to track scales"
                )
            )
        named, value = objective_of(self.objective, metrics)
        if scale is None:
            return Result(named, value)
        return Result(named, value, scale.params, scale.tokens)

    def _check_scalable(self, what: str) -> None:
        if self.direction != "minimize":
            raise MixoptError(
                f"{what}: scale-aware laws model a loss that falls with model size and tokens; "
                "this study maximises its objective"
            )

    def _next_id(self) -> str:
        return f"m{len(self.suggestions):04d}"


def study_strategies() -> list[str]:
    """Strategies a study can run: those that need neither fidelities nor constraints."""
    return strategy_names(fidelities=False, constraints=False)


def outside_data(rec: Recommendation, X: np.ndarray, *, threshold: float = OUTSIDE_L1) -> bool:
    """True when the nearest trial is far from the recommendation (L1 > ``threshold``): the
    predictor is extrapolating, and the mixture deserves a trial before anyone trusts it."""
    if len(X) == 0:
        return True
    return bool(np.abs(X - rec.weights).sum(axis=1).min() > threshold)
