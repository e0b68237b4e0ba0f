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
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers import Recommendation, make_proposer
from mixopt.proposers.registry import DEFAULT_STRATEGY, STRATEGIES, strategy_names
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

FORMAT_VERSION = 1


@dataclass
class Suggestion:
    """A mixture the study asked for (or one imported), and what came back for it."""

    mixture_id: str
    weights: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    objective: float | None = None
    source: str = "asked"  # asked | imported

    @property
    def done(self) -> bool:
        return self.objective is not None


@dataclass
class Best:
    """The study's recommendation."""

    weights: dict[str, float]
    predicted: float
    predicted_std: float | None
    method: str
    supported_by: list[str]
    nearest: list[dict[str, Any]]
    outside_data: bool


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
        self.suggestions: dict[str, Suggestion] = {}
        self._asks = 0

    @property
    def domains(self) -> list[str]:
        return list(self.space.domains)

    # ------------------------------------------------------------------------------ ask/tell

    def ask(self, n: int = 1) -> list[Suggestion]:
        """``n`` new mixtures to train (distinct from every mixture the study knows)."""
        if n < 1:
            raise MixoptError("ask needs n >= 1")
        done = [s for s in self.suggestions.values() if s.done]
        self._asks += 1
        if len(done) < self.initial:
            rng = np.random.default_rng([self.seed, self._asks])
            rows = self._sampler().sample(n, rng, exclude=self._known())
        else:
            proposer = make_proposer(self.strategy, self._sampler(), seed=self.seed + self._asks)
            X, y = self._observations()
            proposer.tell(X, y)
            rows = proposer.ask(n)
        out = []
        for row in rows:
            suggestion = Suggestion(self._next_id(), self.space.as_dict(row))
            self.suggestions[suggestion.mixture_id] = suggestion
            out.append(suggestion)
        return out

    def tell(self, mixture_id: str, metrics: Mapping[str, float] | float) -> float:
        """Report the result of an asked mixture; returns its objective value."""
        if mixture_id not in self.suggestions:
            raise MixoptError(f"unknown mixture id {mixture_id!r}")
        suggestion = self.suggestions[mixture_id]
        suggestion.metrics, suggestion.objective = self._objective_of(metrics)
        return suggestion.objective

    def add(self, weights: Mapping[str, float], metrics: Mapping[str, float] | float) -> str:
        """Import a finished run (a mixture trained elsewhere); returns its mixture id."""
        vector = self.space.check(_normalised(weights), source="added run")
        suggestion = Suggestion(self._next_id(), self.space.as_dict(vector), source="imported")
        suggestion.metrics, suggestion.objective = self._objective_of(metrics)
        self.suggestions[suggestion.mixture_id] = suggestion
        return suggestion.mixture_id

    def best(self) -> Best:
        """The recommended mixture: the strategy's model optimum, with its predicted value."""
        X, y = self._observations()
        if len(y) < 2:
            raise MixoptError(f"best() needs at least 2 results, the study has {len(y)}")
        proposer = make_proposer(self.strategy, self._sampler(), seed=self.seed)
        proposer.tell(X, y)
        rec = proposer.recommend()
        done = [s for s in self.suggestions.values() if s.done]
        sign = 1.0 if self.direction == "minimize" else -1.0
        return Best(
            weights=self.space.as_dict(rec.weights),
            predicted=sign * rec.predicted,
            predicted_std=rec.predicted_std,
            method=rec.method,
            supported_by=[done[i].mixture_id for i in rec.evidence],
            nearest=[
                {
                    "mixture_id": done[i].mixture_id,
                    "objective": done[i].objective,
                    "l1_distance": float(np.abs(X[i] - rec.weights).sum()),
                }
                for i in rec.nearest
            ],
            outside_data=outside_data(rec, X),
        )

    def trials(self) -> list[dict[str, Any]]:
        """Every mixture with its weights, metrics and objective (for a DataFrame)."""
        return [
            {"mixture_id": s.mixture_id, "source": s.source, "objective": s.objective}
            | {f"weight/{d}": w for d, w in s.weights.items()}
            | s.metrics
            for s in self.suggestions.values()
        ]

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
            "asks": self._asks,
            "suggestions": [asdict(s) for s in self.suggestions.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Study:
        if data.get("version") != FORMAT_VERSION:
            raise MixoptError(f"not a mixopt study (version {data.get('version')!r})")
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
        )
        study._asks = int(data["asks"])
        for item in data["suggestions"]:
            suggestion = Suggestion(**item)
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

    def _observations(self) -> tuple[np.ndarray, np.ndarray]:
        done = [s for s in self.suggestions.values() if s.done]
        sign = 1.0 if self.direction == "minimize" else -1.0
        X = np.array([[s.weights[d] for d in self.domains] for s in done]).reshape(
            -1, len(self.domains)
        )
        y = np.array([sign * float(s.objective) for s in done if s.objective is not None])
        return X, y

    def _objective_of(self, metrics: Mapping[str, float] | float) -> tuple[dict[str, float], float]:
        if isinstance(metrics, int | float):
            value = float(metrics)
            named = {next(iter(self.objective)): value} if len(self.objective) == 1 else {}
        else:
            named = {k: float(v) for k, v in metrics.items()}
            missing = sorted(set(self.objective) - set(named))
            if missing:
                raise MixoptError(
                    f"metrics lack {missing}, which the objective {self.objective} needs"
                )
            value = sum(w * named[m] for m, w in self.objective.items())
        if not np.isfinite(value):
            raise MixoptError(f"objective value must be finite, got {value}")
        return named, value

    def _next_id(self) -> str:
        return f"m{len(self.suggestions):04d}"


def study_strategies() -> list[str]:
    """Strategies a study can run: those that need neither fidelities nor constraints."""
    return strategy_names(fidelities=False, constraints=False)


def outside_data(rec: Recommendation, X: np.ndarray, *, threshold: float = 0.5) -> bool:
    """True when the nearest trial is far from the recommendation (L1 > ``threshold``): the
    predictor is extrapolating, and the mixture deserves a trial before anyone trusts it."""
    if len(X) == 0:
        return True
    return bool(np.abs(X - rec.weights).sum(axis=1).min() > threshold)


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    """Rows of published tables are rounded: renormalise sums within 1% of one."""
    total = sum(float(v) for v in weights.values())
    if total > 0 and abs(total - 1.0) <= 0.01:
        return {k: float(v) / total for k, v in weights.items()}
    return {k: float(v) for k, v in weights.items()}
