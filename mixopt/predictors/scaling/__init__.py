"""Scale-aware mixing laws: predict a mixture's loss at a target model size and token count.

Proxy-scale predictors judge mixtures at the scale they were trained at, and tiny short proxies
reward starving hard domains. These laws take the scale as input and extrapolate to the target.

Input convention: ``X`` is (n, m + 2), the m mixture weights, then N (non-embedding parameters,
``TrainResult.n_params``) and D (training tokens seen, ``TrainResult.tokens`` or an evaluation's
``tokens``); one row per evaluation along every run, so a run contributes its whole curve. The
per-target laws (``JointLaw``, ``BiMixLaw``, ``NestedLaw``) take ``y`` (n,), one loss (a
per-domain validation loss; ``domain`` names its column among the weights); ``CapacityLaw``,
``ScalingObjective`` and ``ScalingLawSelector`` take ``Y`` (n, t), per-domain losses, and predict
the objective (their weighted sum; ``predict_targets`` gives the columns). Every law has
``predict(X, return_std=True)`` from a bootstrap over runs (or mixtures, for the nested law).

Points along one run are honest samples of L(N, D) only when the learning-rate schedule does not
depend on the run's length (constant, or warmup-stable before its decay); under a cosine
schedule the intermediate points sit above the loss of a run stopped there, so fit those runs'
final points only (with several token budgets) or expect a pessimistic D-extrapolation.

- ``JointLaw``: E + A·N^-α + B·(D·s(w))^-β with learned transfer s(w) = Σ v_j w_j;
- ``CapacityLaw``: "Explaining Data Mixing Scaling Laws" (a KKT capacity split across domains);
- ``BiMixLaw``: Σ_j F_j w_j^-α_j times a data-volume factor;
- ``NestedLaw``: Data Mixing Laws' step law → size law → mixing law;
- ``ScalingLawSelector``: weighs them by held-out extrapolation error, or picks one (``select``);
- ``predict_at`` / ``optimal_mixture_at``: use a fitted law at the target (``target``).
"""

from mixopt.predictors.scaling.base import EXTRA_COLUMNS, ScalingDataError, split_inputs
from mixopt.predictors.scaling.bimix import BiMixLaw
from mixopt.predictors.scaling.capacity import CapacityLaw
from mixopt.predictors.scaling.joint import JointLaw
from mixopt.predictors.scaling.nested import NestedLaw
from mixopt.predictors.scaling.objective import LAW_NAMES, ScalingObjective, make_law
from mixopt.predictors.scaling.select import ScalingLawSelector, extrapolation_split
from mixopt.predictors.scaling.target import (
    TargetOptimum,
    at_scale,
    optimal_mixture_at,
    predict_at,
)

__all__ = [
    "EXTRA_COLUMNS",
    "LAW_NAMES",
    "BiMixLaw",
    "CapacityLaw",
    "JointLaw",
    "NestedLaw",
    "ScalingDataError",
    "ScalingLawSelector",
    "ScalingObjective",
    "TargetOptimum",
    "at_scale",
    "extrapolation_split",
    "make_law",
    "optimal_mixture_at",
    "predict_at",
    "split_inputs",
]
