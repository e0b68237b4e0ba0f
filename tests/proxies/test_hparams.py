"""proxies.hparams: the Step Law, its fit in log space and learning-rate transfer."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from proxies.config import ConfigError
from proxies.hparams import (
    PUBLISHED_EXPONENTS,
    PUBLISHED_LAW,
    StepLaw,
    optimal_batch_tokens,
    transfer_lr,
)
from proxies.presets import get_preset

GRID_N = (3.3e4, 1.3e5, 4.9e5, 1.3e6, 5.1e6)
GRID_D = (2.5e5, 1e6, 4e6)


def test_published_law_values() -> None:
    assert PUBLISHED_LAW.exponents == PUBLISHED_EXPONENTS == (-0.713, 0.307)
    assert PUBLISHED_LAW.coefficient == 1.79
    # 1.79 * 1e8**-0.713 * 1e10**0.307 = 1.79 * 10**-5.704 * 10**3.07 = 1.79 * 1.977e-6 * 1174.9
    assert PUBLISHED_LAW.lr(1e8, 1e10) == pytest.approx(4.158e-3, rel=1e-3)
    assert optimal_batch_tokens(1e6) == pytest.approx(0.58 * 1e6**0.571)
    assert optimal_batch_tokens(4e6) / optimal_batch_tokens(1e6) == pytest.approx(4**0.571)


@pytest.mark.parametrize(
    "truth", [StepLaw(), StepLaw(0.05, -0.35, 0.12), StepLaw(300.0, -1.1, -0.2)]
)
def test_fit_recovers_known_law(truth: StepLaw) -> None:
    points = [(n, d, truth.lr(n, d)) for n in GRID_N for d in GRID_D]
    fitted = StepLaw.fit(points)
    assert fitted.n_exponent == pytest.approx(truth.n_exponent, abs=1e-9)
    assert fitted.d_exponent == pytest.approx(truth.d_exponent, abs=1e-9)
    assert fitted.coefficient == pytest.approx(truth.coefficient, rel=1e-9)


def test_fit_with_noise_is_close_and_unbiased_in_log_space() -> None:
    rng = np.random.default_rng(0)
    truth = StepLaw(2.0, -0.6, 0.3)
    points = [
        (n, d, truth.lr(n, d) * math.exp(rng.normal(0, 0.05)))
        for n in np.geomspace(1e4, 1e7, 8)
        for d in np.geomspace(1e5, 1e8, 6)
    ]
    fitted = StepLaw.fit(points)
    assert fitted.n_exponent == pytest.approx(-0.6, abs=0.02)
    assert fitted.d_exponent == pytest.approx(0.3, abs=0.02)
    assert isinstance(fitted.n_exponent, float)  # plain floats, not numpy scalars


def test_fit_holding_one_exponent() -> None:
    truth = StepLaw(0.7, -0.5, 0.25)
    one_d = [(n, 1e6, truth.lr(n, 1e6)) for n in GRID_N]
    fitted = StepLaw.fit(one_d, d_exponent=0.25)
    assert fitted.d_exponent == 0.25
    assert fitted.n_exponent == pytest.approx(-0.5, abs=1e-9)
    assert fitted.coefficient == pytest.approx(0.7, rel=1e-9)
    one_n = [(1e5, d, truth.lr(1e5, d)) for d in GRID_D]
    assert StepLaw.fit(one_n, n_exponent=-0.5).d_exponent == pytest.approx(0.25, abs=1e-9)
    with pytest.raises(ConfigError, match=r"two distinct N values to fit n_exponent"):
        StepLaw.fit(one_n)
    with pytest.raises(ConfigError, match=r"two distinct D values to fit d_exponent"):
        StepLaw.fit(one_d)


def test_fit_needs_enough_points() -> None:
    with pytest.raises(ConfigError, match="0 point"):
        StepLaw.fit([])
    # three points on a line in (log N, log D): the two exponents are not separable
    collinear = [(1e4, 1e5, 1e-3), (1e5, 1e6, 2e-3), (1e6, 1e7, 4e-3)]
    with pytest.raises(ConfigError, match="collinear"):
        StepLaw.fit(collinear)
    # exactly three independent points: an exact fit
    law = StepLaw(1.0, -0.5, 0.5)
    exact = [(n, d, law.lr(n, d)) for n, d in [(1e4, 1e5), (1e5, 1e5), (1e4, 1e6)]]
    assert StepLaw.fit(exact).exponents == pytest.approx((-0.5, 0.5))


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ((0, 1e6, 1e-3), r"StepLaw\.fit\.points\[1\]\.N must be > 0 and finite, got 0"),
        ((1e5, -1, 1e-3), r"points\[1\]\.D must be > 0"),
        ((1e5, 1e6, math.nan), r"points\[1\]\.lr must be > 0 and finite, got nan"),
        ((1e5, 1e6, math.inf), r"points\[1\]\.lr .* got inf"),
        ((1e5, 1e6, "0.1"), r"points\[1\]\.lr .* got '0.1'"),
        ((1e5, 1e6), r"points\[1\] must be \(N, D, lr\)"),
    ],
)
def test_fit_names_a_bad_point(point: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StepLaw.fit([(1e4, 1e5, 1e-3), point, (1e6, 1e7, 3e-3)])  # type: ignore[list-item]


def test_transfer_identity_at_equal_point() -> None:
    for exponents in (PUBLISHED_EXPONENTS, (-1.3, 0.9), StepLaw(5.0, 0.2, -0.4)):
        assert transfer_lr(3e-3, 1.3e5, 1e6, 1.3e5, 1e6, exponents=exponents) == pytest.approx(
            3e-3, rel=1e-12
        )


def test_transfer_composes_and_inverts() -> None:
    a, b, c = (3.3e4, 2.5e5), (1.3e5, 1e6), (4.9e5, 4e6)
    for exponents in (PUBLISHED_EXPONENTS, (-0.4, 0.1)):
        ab = transfer_lr(2e-3, *a, *b, exponents=exponents)
        abc = transfer_lr(ab, *b, *c, exponents=exponents)
        assert abc == pytest.approx(transfer_lr(2e-3, *a, *c, exponents=exponents), rel=1e-12)
        assert transfer_lr(ab, *b, *a, exponents=exponents) == pytest.approx(2e-3, rel=1e-12)


def test_transfer_follows_the_law_ratio_not_its_coefficient() -> None:
    law = StepLaw(123.0, -0.6, 0.25)
    other = StepLaw(0.001, -0.6, 0.25)  # same exponents: same transfer
    tuned = 4e-3
    moved = transfer_lr(tuned, 1e5, 1e6, 4e5, 2e6, exponents=law)
    assert moved == pytest.approx(tuned * law.lr(4e5, 2e6) / law.lr(1e5, 1e6), rel=1e-12)
    assert moved == pytest.approx(other.transfer(tuned, 1e5, 1e6, 4e5, 2e6), rel=1e-12)
    # more parameters: a smaller lr; more tokens: a larger one (published signs)
    assert transfer_lr(tuned, 1e5, 1e6, 4e5, 1e6) < tuned < transfer_lr(tuned, 1e5, 1e6, 1e5, 4e6)


def test_transfer_between_presets_uses_non_embedding_params() -> None:
    tiny = get_preset("tiny", vocab_size=1024, seq_len=128).non_embedding_params()
    small = get_preset("small", vocab_size=1024, seq_len=128).non_embedding_params()
    moved = transfer_lr(3e-3, tiny, 1e6, small, 1e6)
    assert moved == pytest.approx(3e-3 * (small / tiny) ** -0.713, rel=1e-12)


@pytest.mark.parametrize("name", ["lr", "n_from", "d_from", "n_to", "d_to"])
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, None, "1"])
def test_transfer_names_a_bad_argument(name: str, bad: object) -> None:
    values: dict[str, object] = {
        "lr": 1e-3,
        "n_from": 1e5,
        "d_from": 1e6,
        "n_to": 2e5,
        "d_to": 2e6,
    }
    values[name] = bad
    with pytest.raises(ConfigError, match=rf"^transfer_lr\.{name} must be > 0 and finite") as info:
        transfer_lr(**values)  # type: ignore[arg-type]
    assert info.value.field == name


@pytest.mark.parametrize(
    ("exponents", "message"),
    [
        ((-0.7,), r"transfer_lr\.exponents must be \(n_exponent, d_exponent\)"),
        ("ab", r"transfer_lr\.exponents must be"),
        ((math.nan, 0.3), r"exponents\[0\] \(n_exponent\) must be a finite number, got nan"),
        ((-0.7, math.inf), r"exponents\[1\] \(d_exponent\) must be a finite number"),
    ],
)
def test_transfer_names_bad_exponents(exponents: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        transfer_lr(1e-3, 1e5, 1e6, 2e5, 2e6, exponents=exponents)  # type: ignore[arg-type]


def test_step_law_validates_itself() -> None:
    with pytest.raises(ConfigError, match=r"StepLaw\.coefficient must be > 0 and finite, got 0"):
        StepLaw(coefficient=0)
    with pytest.raises(ConfigError, match=r"StepLaw\.n_exponent must be a finite number"):
        StepLaw(n_exponent=math.nan)
    with pytest.raises(ConfigError, match=r"StepLaw\.d_exponent .* got inf"):
        StepLaw(d_exponent=math.inf)
    law = StepLaw(np.float32(2.0), np.float64(-0.5), 0)  # type: ignore[arg-type]
    assert type(law.coefficient) is float and law.d_exponent == 0.0
    with pytest.raises(ConfigError, match=r"StepLaw\.lr\.n must be > 0"):
        law.lr(-5, 1e6)
    with pytest.raises(ConfigError, match=r"StepLaw\.lr\.d must be > 0"):
        law.lr(1e5, math.nan)
    with pytest.raises(ConfigError, match=r"optimal_batch_tokens\.d must be > 0"):
        optimal_batch_tokens(0)


def test_import_is_torch_free() -> None:
    code = (
        "import sys\n"
        "from proxies.hparams import StepLaw, transfer_lr\n"
        "StepLaw.fit([(1e4, 1e5, 1e-3), (1e5, 1e5, 5e-4), (1e4, 1e6, 2e-3)])\n"
        "transfer_lr(1e-3, 1e5, 1e6, 2e5, 2e6)\n"
        "assert 'torch' not in sys.modules, 'proxies.hparams imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
