"""The final choice at validation: the search's recommendation stands unless a validated mixture
beats it seed by seed beyond noise (and holds the guard rails); the shrink path toward natural."""

import numpy as np
import pytest

from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.search.validation import TOWARD_NATURAL, decide, path
from mixopt.spec.objective import ConstraintSpec
from mixopt.testing import ScriptedRunner, synthetic_execute
from mixopt.verdict import SEARCH_CHOICE, check_guard_rails, comparisons, switch, verdict
from tests.conftest import QUICK_SEARCH

SEEDS = {0: 0.0, 1: 0.08, 2: -0.05, 3: 0.03}  # shared by every mixture (common random numbers)


def _summary(level: float, jitter: float = 0.0, code: float | None = None) -> dict:
    """A mixture validated over SEEDS: ``level`` plus the seed's shift, plus ``jitter`` x an
    alternating sign (noise that pairing cannot remove)."""
    by_seed = {str(s): level + shift + jitter * (-1) ** s for s, shift in enumerate(SEEDS.values())}
    values = list(by_seed.values())
    metrics_by_seed = {
        s: {"val_loss/code": code if code is not None else v} for s, v in by_seed.items()
    }
    return {
        "objective": float(np.mean(values)),
        "objective_std": float(np.std(values, ddof=1)),
        "seeds": len(values),
        "by_seed": by_seed,
        "metrics_by_seed": metrics_by_seed,
        "metrics": {
            "val_loss/code": float(np.mean([m["val_loss/code"] for m in metrics_by_seed.values()]))
        },
        "weights": {"code": level / 10, "bible": 1 - level / 10},
    }


def test_a_mixture_that_beats_the_recommendation_beyond_noise_replaces_it():
    validation = {
        "recommended": _summary(4.00),
        "natural": _summary(3.95, jitter=0.002),  # better on every seed
        "uniform": _summary(3.97),  # better too, by less
        "proxy_optimum": _summary(4.20),
    }
    assert decide(validation, "minimize") == "natural"
    assert decide(validation, "maximize") == "proxy_optimum"  # the direction counts
    switched = switch(validation, "natural")
    assert switched["recommended"]["objective"] == validation["natural"]["objective"]
    assert switched["recommended"]["chosen_from"] == "natural"
    assert switched[SEARCH_CHOICE]["objective"] == validation["recommended"]["objective"]
    assert switched["natural"] == validation["natural"]  # still there for guard rails
    # the verdict compares the new recommendation with everything but itself
    found = comparisons(switched, "minimize")
    assert set(found) == {SEARCH_CHOICE, "uniform", "proxy_optimum"}
    assert found[SEARCH_CHOICE].outcome == "beats"
    text = verdict(switched, "minimize")
    assert text.startswith("recommended (natural, chosen at validation) beats search_choice")


def test_noise_alone_does_not_move_the_recommendation():
    # natural's mean is lower, but the per-seed differences swing both ways
    validation = {"recommended": _summary(4.00), "natural": _summary(3.995, jitter=0.03)}
    found = comparisons(validation, "minimize")["natural"]
    assert found.outcome == "ties"
    assert decide(validation, "minimize") is None
    # without paired seeds there is no switch either
    unpaired = {k: {**v, "by_seed": {}} for k, v in validation.items()}
    assert decide(unpaired, "minimize") is None
    assert (
        decide({"recommended": {"objective": None}, "natural": _summary(1.0)}, "minimize") is None
    )


def test_a_candidate_that_breaks_a_guard_rail_is_not_chosen():
    validation = {
        "recommended": _summary(4.00, code=3.0),
        "uniform": _summary(3.90, code=3.5),  # better overall, worse on code
        "natural": _summary(3.95, code=2.9),
    }
    rule = ConstraintSpec(metric="val_loss/code", max_value=3.2)
    assert decide(validation, "minimize") == "uniform"
    assert decide(validation, "minimize", [rule]) == "natural"
    # a mixture outside what the search may recommend (a grouped search's shares) is skipped
    assert decide(validation, "minimize", allowed=lambda label: label != "uniform") == "natural"
    # a guard rail relative to the mixture chosen is still measured after the switch
    relative = ConstraintSpec(metric="val_loss/code", max_increase=0.0, relative_to="natural")
    checks = check_guard_rails([relative], switch(validation, "natural"))
    assert checks[0].held is True and checks[0].excess == pytest.approx(0.0)


def test_the_path_toward_natural_lies_between_the_two():
    recommended, natural = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.3, 0.5])
    points = path(recommended, natural, 3)
    assert list(points) == [f"{TOWARD_NATURAL}25", f"{TOWARD_NATURAL}50", f"{TOWARD_NATURAL}75"]
    halfway = points[f"{TOWARD_NATURAL}50"]
    np.testing.assert_allclose(halfway, (recommended + natural) / 2)
    distances = [np.abs(w - recommended).sum() for w in points.values()]
    assert distances == sorted(distances) and 0 < distances[0] < distances[-1]
    assert path(recommended, natural, 0) == {}


def _uniform_is_best(request):
    """Losses lowest at the uniform mixture, shifted per seed alike for every mixture, with a
    little noise per (seed, mixture): validation can tell mixtures apart seed by seed."""
    result = synthetic_execute(request)
    w = np.array([request.weights[d] for d in sorted(request.weights)])
    seed = request.train.seed
    noise = 1e-5 * np.sin(1e3 * w[0] + seed)
    loss = 3.0 + 5.0 * float(np.sum((w - 1 / len(w)) ** 2)) + 0.05 * seed + noise
    result["metrics"] = {f"val_loss/{d}": loss for d in request.weights}
    return result


@pytest.mark.parametrize("choose", ["validated", "search"])
def test_validation_chooses_the_recommendation_in_the_loop(make_spec, tmp_path, choose):
    validate = {"baselines": ["uniform", "natural"], "seeds": 3, "path": 1, "choose": choose}
    spec = make_spec(search={**QUICK_SEARCH, "strategy": "random"}, proxy={"seq_len": 16},
                     validate=validate)  # fmt: skip
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(_uniform_is_best)).run()
    rec = outcome.recommendation
    validation = rec["validation"]
    assert f"{TOWARD_NATURAL}50" in validation  # the shrink path was validated too
    uniform = validation["uniform"]["weights"]
    if choose == "search":
        assert SEARCH_CHOICE not in validation and rec["weights"] != pytest.approx(uniform)
        assert rec["verdict"].startswith("recommended loses to uniform")
        return
    assert rec["weights"] == pytest.approx(uniform)
    assert validation["recommended"]["chosen_from"] == "uniform"
    searched = validation[SEARCH_CHOICE]
    assert searched["objective"] > validation["recommended"]["objective"]
    assert rec["method"].startswith("validation: uniform beat the search's recommendation")
    assert rec["verdict"].startswith("recommended (uniform, chosen at validation) beats")
    assert rec["comparisons"][SEARCH_CHOICE]["outcome"] == "beats"
    # the runs table still says which trials were which mixture
    assert JobDir(job_dir).load_recommendation()["weights"] == rec["weights"]
