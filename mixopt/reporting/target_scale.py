"""recommendation.json's ``target_scale`` section (written by :mod:`mixopt.search.scale`) as
typed records, read leniently: an odd field takes its default and the record lists what it could
not read (``problems``), so a report of an older or damaged job still renders."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TARGET_SCALE = "target_scale"  # recommendation.json's section (mixopt.search.driver writes it)


@dataclass(frozen=True)
class ScaleMixture:
    """One mixture as the target-scale law predicts it (``target_scale.mixtures[label]``)."""

    label: str
    weights: dict[str, float]
    objective: float | None  # predicted at the target
    objective_std: float | None
    objective_at_proxy: float | None  # predicted at the search proxy's size and tokens
    losses: dict[str, float] = field(default_factory=dict)  # per metric, at the target


@dataclass(frozen=True)
class CalibrationRow:
    """A validated mixture: the law's prediction at the validation proxy against the measure."""

    label: str
    predicted: float | None
    predicted_std: float | None
    observed: float | None
    at_search_scale: float | None


@dataclass(frozen=True)
class ScaleCalibration:
    """The law at the validation scale (``target_scale.calibration``)."""

    params: float | None
    tokens: float | None
    rows: list[CalibrationRow]
    mape: float | None
    spearman_law: float | None  # law's prediction vs observed
    spearman_search_scale: float | None  # the search scale's prediction vs observed


@dataclass(frozen=True)
class ScaleCurves:
    """Each mixture's predicted objective at model sizes from the search proxy's to the
    target's (``target_scale.curves``); the lists run along ``params``."""

    params: list[float]
    tokens: list[float]
    objective: dict[str, list[float | None]]
    objective_std: dict[str, list[float | None]]


@dataclass(frozen=True)
class TargetScale:
    """recommendation.json's ``target_scale``: the recommendation at the target's size."""

    available: bool
    reason: str = ""  # why not, when not available
    params: float | None = None  # the target's non-embedding parameters
    tokens: float | None = None
    law: str = ""
    fitted_on: str = ""
    # law -> mape, spearman, error and weight (its share of an averaged prediction)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    shrink: float | None = None
    unshrunk: dict[str, Any] | None = None  # {"weights": {...}, "predicted": float}
    flags: list[str] = field(default_factory=list)
    mixtures: dict[str, ScaleMixture] = field(default_factory=dict)
    calibration: ScaleCalibration | None = None
    curves: ScaleCurves | None = None
    problems: list[str] = field(default_factory=list)  # what could not be read


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON's NaN, strings, booleans, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    out = {str(k): _number(v) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not None}


def _series(value: Any, length: int) -> list[float | None] | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    return [_number(v) for v in value]


def read_target_scale(recommendation: dict[str, Any] | None) -> TargetScale | None:
    """The ``target_scale`` section of a recommendation, leniently; None when there is none."""
    if not recommendation or TARGET_SCALE not in recommendation:
        return None
    data = recommendation[TARGET_SCALE]
    if not isinstance(data, dict):
        return TargetScale(
            available=False,
            reason=f"recommendation.json: {TARGET_SCALE} is not a mapping",
            problems=[f"{TARGET_SCALE} is a {type(data).__name__}"],
        )
    if data.get("available") is not True:
        reason = data.get("reason")
        return TargetScale(
            available=False,
            reason=str(reason) if reason else "the target-scale law is not available",
        )
    problems: list[str] = []
    mixtures: dict[str, ScaleMixture] = {}
    raw_mixtures = data.get("mixtures")
    for label, item in _mapping(raw_mixtures).items():
        if not isinstance(item, dict):
            problems.append(f"mixtures.{label} is not a mapping")
            continue
        mixtures[str(label)] = ScaleMixture(
            label=str(label),
            weights=_numbers(item.get("weights")),
            objective=_number(item.get("objective")),
            objective_std=_number(item.get("objective_std")),
            objective_at_proxy=_number(item.get("objective_at_proxy")),
            losses=_numbers(item.get("losses")),
        )
    scores: dict[str, dict[str, Any]] = {}
    raw_scores = data.get("scores")
    for law, score in _mapping(raw_scores).items():
        if isinstance(score, dict):
            scores[str(law)] = {
                "mape": _number(score.get("mape")),
                "spearman": _number(score.get("spearman")),
                "error": str(score["error"]) if score.get("error") else None,
                "weight": _number(score.get("weight")),
            }
    unshrunk = data.get("unshrunk")
    flags = data.get("flags")
    return TargetScale(
        available=True,
        params=_number(data.get("params")),
        tokens=_number(data.get("tokens")),
        law=str(data.get("law") or ""),
        fitted_on=str(data.get("fitted_on") or ""),
        scores=scores,
        shrink=_number(data.get("shrink")),
        unshrunk=(
            {
                "weights": _numbers(unshrunk.get("weights")),
                "predicted": _number(unshrunk.get("predicted")),
            }
            if isinstance(unshrunk, dict)
            else None
        ),
        flags=[str(f) for f in flags] if isinstance(flags, list) else [],
        mixtures=mixtures,
        calibration=_calibration(data.get("calibration"), problems),
        curves=_curves(data.get("curves"), problems),
        problems=problems,
    )


def _calibration(data: Any, problems: list[str]) -> ScaleCalibration | None:
    if not data:  # absent, or {} when no validated mixture had an objective
        return None
    if not isinstance(data, dict):
        problems.append("calibration is not a mapping")
        return None
    scale = _mapping(data.get("scale"))
    listed = data.get("mixtures")
    rows = [
        CalibrationRow(
            label=str(row.get("label", "")),
            predicted=_number(row.get("predicted")),
            predicted_std=_number(row.get("predicted_std")),
            observed=_number(row.get("observed")),
            at_search_scale=_number(row.get("at_search_scale")),
        )
        for row in (listed if isinstance(listed, list) else [])
        if isinstance(row, dict)
    ]
    return ScaleCalibration(
        params=_number(scale.get("params")),
        tokens=_number(scale.get("tokens")),
        rows=rows,
        mape=_number(data.get("mape")),
        spearman_law=_number(data.get("spearman_law")),
        spearman_search_scale=_number(data.get("spearman_search_scale")),
    )


def _curves(data: Any, problems: list[str]) -> ScaleCurves | None:
    if data is None:  # written by mixopt versions that predate the curves
        return None
    if not isinstance(data, dict) or not isinstance(data.get("params"), list):
        problems.append("curves: no list of model sizes")
        return None
    params = [_number(v) for v in data["params"]]
    if len(params) < 2 or any(v is None or v <= 0 for v in params):
        problems.append("curves: the model sizes are not positive numbers")
        return None
    length = len(params)
    tokens = [v for v in _series(data.get("tokens"), length) or [] if v is not None]
    if len(tokens) != length:
        problems.append("curves: no tokens per model size")
        tokens = []
    objective: dict[str, list[float | None]] = {}
    spread: dict[str, list[float | None]] = {}
    raw, raw_std = _mapping(data.get("objective")), _mapping(data.get("objective_std"))
    for label, values in raw.items():
        series = _series(values, length)
        if series is None:
            problems.append(f"curves.objective.{label}: not {length} numbers")
            continue
        objective[str(label)] = series
        spread[str(label)] = _series(raw_std.get(label), length) or [None] * length
    return ScaleCurves(
        params=[float(v) for v in params if v is not None],
        tokens=tokens,
        objective=objective,
        objective_std=spread,
    )
