"""Linear autoregressive co-kriging (Kennedy & O'Hagan 2000) over mixtures, for ``mfbo``.

Fidelity levels 0 (cheapest) .. L-1 (the target) are chained:

    f_0(x) = g_0(x),     f_l(x) = rho_l * f_{l-1}(x) + g_l(x),     y = f_level(x) + noise_level

with independent GPs g_l (RBF, ARD over log-weights, BoTorch's dimension-scaled
lengthscale prior, each its own output scale), a
constant mean per level, a noise variance per level, and the correlations rho_l learned with
the rest by marginal likelihood on *all* trials jointly (designs need not be nested). So

    cov(f_i(x), f_j(x')) = sum_{k <= min(i, j)} a_k(i) a_k(j) k_k(x, x'),   a_k(i) = prod rho_m

(m from k + 1 to i). A cheap trial informs the target through ``rho`` and the shared g_0; what
the cheap proxy gets wrong about the target (a mixture-dependent bias) is g_l, learned from the
target trials; each level's own loss level and noise do not leak into the others. Before any
target trial ``rho`` sits at its prior (log-normal around 1, positive) and g_l at a tenth of
g_0's variance: the cheap proxy is assumed to rank mixtures like the target, with a small bias.

The model is a BoTorch ``GPyTorchModel`` on rows (weights, level): acquisition functions take
``(..., m + 1)`` tensors whose last column is the level index.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def fit_cokriging(
    X: np.ndarray, levels: np.ndarray, z: np.ndarray, n_levels: int, *, seed: int = 0
) -> Any:
    """The co-kriging GP fitted on weights ``X`` (n, m), level indices and standardised ``z``."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from mixopt.predictors.gp import torch_threads

    torch.manual_seed(seed)
    train_x = torch.as_tensor(np.column_stack([X, levels]), dtype=torch.float64)
    train_y = torch.as_tensor(np.asarray(z, dtype=float), dtype=torch.float64)
    model = _cokriging_class()(train_x, train_y, n_levels)
    threads = 1 if len(z) < 1000 else torch.get_num_threads()
    with torch_threads(threads), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not p.d., added jitter.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        fit_gpytorch_mll(
            ExactMarginalLogLikelihood(model.likelihood, model),
            optimizer_kwargs={"options": {"maxiter": 200}},
        )
    model.eval()
    return model


def scaled_by_level(
    y: np.ndarray, levels: np.ndarray, n_levels: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """``y`` centred on its level's mean and divided by the pooled within-level std; with the
    per-level means and that std (a level's loss = mean[level] + std * z).

    A level without observations takes the nearest observed level's mean (a cheap proxy sits at
    a higher loss everywhere; the co-kriging's per-level constant absorbs what remains).
    """
    y = np.asarray(y, dtype=float)
    observed = sorted(set(levels.tolist()))
    means = np.array(
        [
            y[levels == min(observed, key=lambda o: (abs(o - lv), -o))].mean()
            for lv in range(n_levels)
        ]
    )
    centred = y - means[levels]
    spread = float(centred.std()) if len(y) > 1 else 0.0
    scale = spread if spread > 1e-12 else 1.0
    return centred / scale, means, scale


def _cokriging_class() -> type:
    """Built on first use: ``import mixopt`` must not import torch."""
    global _COKRIGING
    if _COKRIGING is None:
        _COKRIGING = _define()
    return _COKRIGING


_COKRIGING: type | None = None


def _define() -> type:
    import torch
    from botorch.models.gpytorch import GPyTorchModel
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from gpytorch.constraints import GreaterThan, Positive
    from gpytorch.distributions import MultivariateNormal
    from gpytorch.kernels import Kernel, ScaleKernel
    from gpytorch.likelihoods.gaussian_likelihood import _GaussianLikelihoodBase
    from gpytorch.likelihoods.noise_models import Noise
    from gpytorch.means import Mean
    from gpytorch.models import ExactGP
    from gpytorch.priors import LogNormalPrior
    from linear_operator.operators import DiagLinearOperator

    from mixopt.predictors.features import LOG_EPS

    low, high = np.log(LOG_EPS), np.log1p(LOG_EPS)

    def level_of(x: torch.Tensor) -> torch.Tensor:
        return x[..., -1].round().long()

    def log_weights(x: torch.Tensor) -> torch.Tensor:
        return (torch.log(x[..., :-1].clamp_min(0.0) + LOG_EPS) - low) / (high - low)

    class LevelMean(Mean):
        def __init__(self, n_levels: int) -> None:
            super().__init__()
            self.register_parameter("constants", torch.nn.Parameter(torch.zeros(n_levels)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.constants[level_of(x)]

    class LevelNoise(Noise):
        def __init__(self, n_levels: int) -> None:
            super().__init__()
            self.register_parameter("raw_noise", torch.nn.Parameter(torch.full((n_levels,), -4.0)))
            self.register_constraint("raw_noise", GreaterThan(1e-6))
            # BoTorch's default noise prior: the data explained by signal rather than noise
            self.register_prior(
                "noise_prior", LogNormalPrior(-4.0, 1.0), lambda m: m.noise, lambda m, v: None
            )

        @property
        def noise(self) -> torch.Tensor:
            return self.raw_noise_constraint.transform(self.raw_noise)

        def forward(self, *params: Any, shape: Any = None, **kwargs: Any) -> Any:
            x = params[0][0] if isinstance(params[0], list | tuple) else params[0]
            return DiagLinearOperator(self.noise[level_of(x)])

    class AutoregressiveKernel(Kernel):
        def __init__(self, n_levels: int, dim: int, bias_scale: float) -> None:
            super().__init__()
            self.n_levels = n_levels
            bases = [
                ScaleKernel(get_covar_module_with_dim_scaled_prior(ard_num_dims=dim))
                for _ in range(n_levels)
            ]
            for k, base in enumerate(bases):
                base.initialize(outputscale=1.0 if k == 0 else bias_scale)
            self.bases = torch.nn.ModuleList(bases)
            # rho > 0 (a cheaper proxy of a language model does not rank mixtures backwards),
            # near 1 a priori: with one or two target trials it is barely identified
            one = float(np.log(np.expm1(1.0)))  # softplus^-1(1): rho starts at 1
            self.register_parameter(
                "raw_rho", torch.nn.Parameter(torch.full((max(n_levels - 1, 1),), one))
            )
            self.register_constraint("raw_rho", Positive())
            self.register_prior(
                "rho_prior", LogNormalPrior(0.0, 0.5), lambda m: m.rho, lambda m, v: None
            )

        @property
        def rho(self) -> torch.Tensor:
            return self.raw_rho_constraint.transform(self.raw_rho)

        def scales(self, k: int) -> torch.Tensor:
            """a_k(level) for every level: 0 below k, 1 at k, the product of rhos above."""
            out = [torch.zeros((), dtype=self.rho.dtype)] * k + [
                torch.ones((), dtype=self.rho.dtype)
            ]
            for level in range(k + 1, self.n_levels):
                out.append(out[-1] * self.rho[level - 1])
            return torch.stack(out)

        def forward(
            self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: Any
        ) -> Any:
            l1, l2 = level_of(x1), level_of(x2)
            z1, z2 = log_weights(x1), log_weights(x2)
            total = None
            for k, base in enumerate(self.bases):
                a = self.scales(k)
                K = base(z1, z2, diag=diag)
                K = K if diag else K.to_dense()
                term = a[l1] * K * a[l2] if diag else a[l1].unsqueeze(-1) * K * a[l2].unsqueeze(-2)
                total = term if total is None else total + term
            return total

    class CoKrigingGP(ExactGP, GPyTorchModel):
        _num_outputs = 1

        def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, n_levels: int) -> None:
            likelihood = _GaussianLikelihoodBase(noise_covar=LevelNoise(n_levels))
            super().__init__(train_x, train_y, likelihood)
            self.mean_module = LevelMean(n_levels)
            self.covar_module = AutoregressiveKernel(n_levels, train_x.shape[-1] - 1, 0.1)
            self.to(train_x)

        def forward(self, x: torch.Tensor) -> MultivariateNormal:
            return MultivariateNormal(self.mean_module(x), self.covar_module(x))

    return CoKrigingGP
