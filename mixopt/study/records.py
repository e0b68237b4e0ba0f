"""What a study records: mixtures it knows, each one's results (at a scale or not), its answers.

A :class:`Suggestion` is one mixture; its ``results`` are what came back for it, one
:class:`Result` per scale (model size N in non-embedding parameters, training tokens D) — or a
single result without a scale, in a study that does not track scales. ``Suggestion.objective``
and ``metrics`` are those of its headline result: the one at the largest scale (N, then D).

A suggestion is *pending* (asked, nothing told yet), *done* (a result came back) or *failed*
(``Study.fail``: its run crashed; not pending, not an observation; a later ``tell`` clears it).

File format (``FORMAT_VERSION`` 2): each suggestion is ``{mixture_id, weights, source,
results: [{metrics, objective, params, tokens}], failed}`` (``failed``: the reason, or null;
absent in older files); the study keeps its ``queue`` of enqueued mixtures. Version 1 files
(``metrics`` and ``objective`` on the suggestion, no scales) still load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mixopt.errors import MixoptError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
OUTSIDE_L1 = 0.5  # nearest told mixture farther than this (L1): the answer extrapolates


@dataclass(frozen=True)
class Scale:
    """A model size N (non-embedding parameters) and its training tokens D."""

    params: float
    tokens: float

    def key(self) -> tuple[float, float]:
        return (self.params, self.tokens)

    def __str__(self) -> str:
        return f"N={self.params:.4g}, D={self.tokens:.4g}"


def scale_of(params: Any, tokens: Any, *, where: str) -> Scale | None:
    """``Scale(params, tokens)``, None when both are None; both finite and > 0, else an error."""
    if params is None and tokens is None:
        return None
    if params is None or tokens is None:
        raise MixoptError(f"{where}: give both params (model size N) and tokens (D), or neither")
    values = []
    for name, value in (("params", params), ("tokens", tokens)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise MixoptError(f"{where}: {name} must be a number, got {value!r}") from None
        if not (math.isfinite(number) and number > 0):
            raise MixoptError(f"{where}: {name} must be finite and > 0, got {value!r}")
        values.append(number)
    return Scale(values[0], values[1])


def as_target(value: Any, *, where: str = "target") -> Scale | None:
    """A target scale from a :class:`Scale`, a mapping ``{"params": N, "tokens": D}`` or a pair
    ``(N, D)``; None stays None."""
    if value is None or isinstance(value, Scale):
        return value
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"params", "tokens"})
        if unknown or set(value) != {"params", "tokens"}:
            raise MixoptError(
                f"{where} must name params (model size N) and tokens (D); got keys {sorted(value)}"
            )
        return scale_of(value["params"], value["tokens"], where=where)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return scale_of(value[0], value[1], where=where)
    raise MixoptError(
        f"{where} must be {{'params': N, 'tokens': D}}, a pair (N, D) or a Scale; got {value!r}"
    )


@dataclass
class Result:
    """What came back for a mixture at one scale (``params``/``tokens`` None: no scale)."""

    metrics: dict[str, float]
    objective: float
    params: float | None = None
    tokens: float | None = None

    @property
    def scale(self) -> Scale | None:
        if self.params is None or self.tokens is None:
            return None
        return Scale(self.params, self.tokens)


@dataclass
class Suggestion:
    """A mixture the study asked for (or one imported), and what came back for it."""

    mixture_id: str
    weights: dict[str, float]
    source: str = "asked"  # asked | enqueued | imported
    results: list[Result] = field(default_factory=list)
    failed: str | None = None  # why its run failed (None: it did not)

    @property
    def done(self) -> bool:
        return bool(self.results)

    @property
    def state(self) -> str:
        """``pending`` (asked, nothing told), ``done`` or ``failed``."""
        return "failed" if self.failed is not None else "done" if self.results else "pending"

    @property
    def result(self) -> Result | None:
        """The headline result: at the largest scale (N, then D), or the only one."""
        if not self.results:
            return None
        return max(self.results, key=lambda r: r.scale.key() if r.scale else (0.0, 0.0))

    @property
    def objective(self) -> float | None:
        result = self.result
        return None if result is None else result.objective

    @property
    def metrics(self) -> dict[str, float]:
        result = self.result
        return {} if result is None else result.metrics

    def result_at(self, scale: Scale | None) -> Result | None:
        return next((r for r in self.results if r.scale == scale), None)

    def record(self, result: Result) -> None:
        """Keep ``result``, replacing one at the same scale (a re-told result); a failed
        mixture told a result (a retry that worked) is failed no more."""
        self.results = [r for r in self.results if r.scale != result.scale] + [result]
        self.failed = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mixture_id": self.mixture_id,
            "weights": self.weights,
            "source": self.source,
            "results": [asdict(r) for r in self.results],
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, item: Mapping[str, Any], version: int) -> Suggestion:
        if version == 1:  # metrics and objective on the suggestion, no scales
            results = []
            if item.get("objective") is not None:
                results.append(Result(dict(item.get("metrics") or {}), float(item["objective"])))
        else:
            results = [Result(**r) for r in item["results"]]
        failed = item.get("failed")
        return cls(
            item["mixture_id"],
            dict(item["weights"]),
            item.get("source", "asked"),
            results,
            None if failed is None else str(failed),
        )


@dataclass
class Best:
    """The study's recommendation; ``params``/``tokens``: the scale it is for (None: no scale)."""

    weights: dict[str, float]
    predicted: float
    predicted_std: float | None
    method: str
    supported_by: list[str]
    nearest: list[dict[str, Any]]
    outside_data: bool
    params: float | None = None
    tokens: float | None = None


@dataclass
class Observed:
    """The best result told (``Study.best_observed``): a mixture that was trained, as it came
    back, at ``params``/``tokens`` (None: the study has no scales)."""

    mixture_id: str
    weights: dict[str, float]
    objective: float
    metrics: dict[str, float]
    params: float | None = None
    tokens: float | None = None


def best_told(
    suggestions: Sequence[Suggestion], direction: str, scale: Scale | None
) -> Observed | None:
    """The best result at ``scale`` (None: at the largest scale told, in a study whose results
    have scales); None when nothing was told there."""
    scales = {r.scale for s in suggestions for r in s.results if r.scale is not None}
    if scale is None and scales:
        scale = max(scales, key=Scale.key)
    told = [(s, s.result_at(scale)) for s in suggestions]
    found = [(s, r) for s, r in told if r is not None]
    if not found:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    s, r = min(found, key=lambda sr: sign * sr[1].objective)
    return Observed(s.mixture_id, dict(s.weights), r.objective, dict(r.metrics), r.params, r.tokens)


def check_version(data: Mapping[str, Any]) -> int:
    version = data.get("version")
    if version not in READABLE_VERSIONS:
        raise MixoptError(
            f"not a mixopt study (version {version!r}; this mixopt reads "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    return int(version)


def objective_of(
    objective: Mapping[str, float], metrics: Mapping[str, float] | float
) -> tuple[dict[str, float], float]:
    """The metrics as floats and the objective's value (a weighted sum of them)."""
    if isinstance(metrics, int | float):
        value = float(metrics)
        named = {next(iter(objective)): value} if len(objective) == 1 else {}
    else:
        named = {k: float(v) for k, v in metrics.items()}
        missing = sorted(set(objective) - set(named))
        if missing:
            raise MixoptError(
                f"metrics lack {missing}, which the objective {dict(objective)} needs"
            )
        value = sum(w * named[m] for m, w in objective.items())
    if not math.isfinite(value):
        raise MixoptError(f"objective value must be finite, got {value}")
    return named, value


def check_law(law: str) -> None:
    from mixopt.predictors.scaling.objective import LAW_NAMES

    if law != "auto" and law not in LAW_NAMES:
        raise MixoptError(
            f"unknown scale-aware law {law!r}; available: auto, {', '.join(LAW_NAMES)}"
        )


def normalised(weights: Mapping[str, float]) -> dict[str, float]:
    """Rows of published tables are rounded: renormalise sums within 1% of one."""
    total = sum(float(v) for v in weights.values())
    if total > 0 and abs(total - 1.0) <= 0.01:
        return {k: float(v) / total for k, v in weights.items()}
    return {k: float(v) for k, v in weights.items()}
