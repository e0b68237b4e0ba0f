"""Typed proposer options: one frozen dataclass per strategy, validated on construction.

Every strategy's options extend :class:`ProposerOptions` (the seed and the target weights, which
every caller passes the same way) with its own fields; a proposer receives all of them when it
is built and nobody sets them afterwards. Fields are keyword-only, so a strategy may add a
required one (mfbo's ``levels``). Bad values raise :class:`OptionsError` naming the class and
the field, e.g. ``MFBOOptions.levels: at least two positive fidelities, the target last``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from mixopt.errors import MixoptError


class OptionsError(MixoptError, ValueError):
    """A strategy name or a proposer option is invalid (a ValueError too, so a pydantic
    validator that calls the registry reports it as a field error)."""


OptionsT = TypeVar("OptionsT", bound="ProposerOptions")


@dataclass(frozen=True, kw_only=True)
class ProposerOptions:
    """What every proposer is built with.

    ``seed`` seeds every random draw (with the proposal count, so each proposal differs but a
    restored proposer repeats it). ``target_weights`` (t,) says how the objective is made of the
    per-target values a caller may tell (``y = targets @ target_weights``, minimise convention);
    proposers that model each target separately (law, pareto) use it.
    """

    seed: int = 0
    target_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self._int("seed", minimum=None)
        if self.target_weights is not None:
            weights = self._floats("target_weights", self.target_weights)
            if not weights:
                self.fail("target_weights", "at least one weight")
            self._set("target_weights", weights)

    # ------------------------------------------------------------------------ validation kit

    def fail(self, name: str, problem: str) -> None:
        raise OptionsError(f"{type(self).__name__}.{name}: {problem}")

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # normalising a frozen field in __post_init__

    def _int(self, name: str, *, minimum: int | None = 1) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(name, f"must be >= {minimum}, got {value}")

    def _positive(self, name: str, *, allow_zero: bool = False) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, f"must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            self.fail(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    def _floats(self, name: str, values: Any) -> tuple[float, ...]:
        """A sequence (list, tuple, 1-d array) of finite numbers, as a tuple of floats."""
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            self.fail(name, f"must be a sequence of numbers, got {values!r}")
        try:
            out = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            self.fail(name, f"must be a sequence of numbers, got {values!r}")
        if not all(math.isfinite(v) for v in out):
            self.fail(name, f"must be finite, got {list(out)}")
        return out

    def _predictor(self, name: str = "predictor") -> None:
        from mixopt.predictors import available_predictors

        value = getattr(self, name)
        if value not in available_predictors():
            self.fail(
                name, f"unknown predictor {value!r}; available: {', '.join(available_predictors())}"
            )


def coerce_options(
    cls: type[OptionsT],
    options: ProposerOptions | Mapping[str, Any] | None,
    values: Mapping[str, Any],
) -> OptionsT:
    """``cls`` options from an instance, a mapping of field values and/or keyword values.

    An instance of another strategy's options, an unknown field or a missing required one is an
    :class:`OptionsError` naming the valid fields.
    """
    if isinstance(options, ProposerOptions):
        if type(options) is not cls:
            raise OptionsError(
                f"expected {cls.__name__}, got {type(options).__name__} "
                "(another strategy's options)"
            )
        if not values:
            return options
        options = {f.name: getattr(options, f.name) for f in fields(options)}
    merged = {**(options or {}), **values}
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(merged) - set(names))
    if unknown:
        raise OptionsError(
            f"{cls.__name__}: unknown option {unknown[0]!r}; its options: {', '.join(names)}"
        )
    try:
        return cls(**merged)
    except TypeError as error:  # a required field left out
        raise OptionsError(f"{cls.__name__}: {error}; its options: {', '.join(names)}") from None
