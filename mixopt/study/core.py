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

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers import Recommendation, make_proposer
from mixopt.proposers.registry import DEFAULT_STRATEGY, STRATEGIES, strategy_names
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.study.records import (
    FORMAT_VERSION,
    OUTSIDE_L1,
    Best,
    Result,
    Scale,
    Suggestion,
    as_target,
    check_law,
    check_version,
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
        """``n`` new mixtures to train (distinct from every mixture the study knows)."""
        if n < 1:
            raise MixoptError("ask needs n >= 1")
        self._asks += 1
        X, y = self._ask_observations()
        if len(y) < self.initial:
            rng = np.random.default_rng([self.seed, self._asks])
            rows = self._sampler().sample(n, rng, exclude=self._known())
        else:
            proposer = make_proposer(self.strategy, self._sampler(), seed=self.seed + self._asks)
            proposer.tell(X, y)
            rows = proposer.ask(n)
        out = []
        for row in rows:
            suggestion = Suggestion(self._next_id(), self.space.as_dict(row))
            self.suggestions[suggestion.mixture_id] = suggestion
            out.append(suggestion)
        return out

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
        if mixture_id not in self.suggestions:
            raise MixoptError(f"unknown mixture id {mixture_id!r}")
        result = self._result(metrics, params, tokens, where=f"tell({mixture_id!r})")
        self.suggestions[mixture_id].record(result)
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

    def trials(self) -> list[dict[str, Any]]:
        """Every result with its mixture's weights, metrics and objective (for a DataFrame);
        a mixture without a result is one row with objective None."""
        rows: list[dict[str, Any]] = []
        for s in self.suggestions.values():
            base: dict[str, Any] = {"mixture_id": s.mixture_id, "source": s.source}
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
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "domains": self.domains,
            "objective": self.objective,
            "direction": self.direction,
            "strategy": self.strategy,
            "bounds": self.bounds,
            "fixed": self.fixed,
            "natural": self.natural,
            "initial": self.initial,
            "seed": self.seed,
            "target": None if self.target is None else vars(self.target),
            "law": self.law,
            "asks": self._asks,
            "suggestions": [s.to_dict() for s in self.suggestions.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Study:
        version = check_version(data)
        study = cls(
            data["domains"],
            objective=data["objective"],
            direction=data["direction"],
            strategy=data["strategy"],
            bounds={d: (b[0], b[1]) for d, b in data["bounds"].items()},
            fixed=data["fixed"],
            natural=data["natural"],
            initial=data["initial"],
            seed=data["seed"],
            name=data["name"],
            target=data.get("target"),
            law=data.get("law", DEFAULT_LAW),
        )
        study._asks = int(data["asks"])
        for item in data["suggestions"]:
            suggestion = Suggestion.from_dict(item, version)
            study.suggestions[suggestion.mixture_id] = suggestion
        return study

    def save(self, path: str | Path) -> None:
        """Write the study as JSON, atomically (a crash never leaves half a file)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        path = Path(path)
        if not path.is_file():
            raise MixoptError(f"{path}: study file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise MixoptError(f"{path}: not a study file: {error}") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as error:
            raise MixoptError(f"{path}: malformed study file ({error})") from None

    # ------------------------------------------------------------------------------- helpers

    def _sampler(self) -> DirichletSampler:
        natural = np.array([self.natural.get(d, 0.0) for d in self.domains])
        return DirichletSampler(self.space, natural)

    def _known(self) -> np.ndarray | None:
        if not self.suggestions:
            return None
        return np.array([[s.weights[d] for d in self.domains] for s in self.suggestions.values()])

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
