"""The end-of-run summary prints each mixture's validated and target-scale numbers."""

from io import StringIO
from pathlib import Path

from rich.console import Console

from mixopt.cli.summary import print_summary
from mixopt.search import JobOutcome


def _mixture(objective: float, std: float) -> dict:
    return {"weights": {"a": 0.5, "b": 0.5}, "objective": objective, "objective_std": std}


def _print(recommendation: dict, tmp_path: Path) -> str:
    out = StringIO()
    console = Console(file=out, width=200, color_system=None)
    print_summary(JobOutcome(tmp_path, recommendation, [], 12.0), console)
    return out.getvalue()


RECOMMENDATION = {
    "job": "demo",
    "weights": {"a": 0.7, "b": 0.3},
    "predicted_objective": 4.25,
    "predicted_std": 0.05,
    "method": "target scale: joint law",
    "verdict": "recommended beats natural",
    "validation": {"recommended": _mixture(4.1, 0.01), "natural": _mixture(4.2, 0.02)},
}


def test_the_summary_shows_the_target_scale_and_the_calibration(tmp_path):
    recommendation = RECOMMENDATION | {
        "target_scale": {
            "available": True,
            "params": 1e7,
            "tokens": 2e8,
            "law": "joint",
            "mixtures": {"recommended": _mixture(3.5123, 0.04), "natural": _mixture(3.6789, 0.05)},
            "calibration": {"mape": 0.0123, "spearman_law": 1.0},
        }
    }
    text = _print(recommendation, tmp_path)
    row = next(line for line in text.splitlines() if "predicted at N=1e+07, D=2e+08" in line)
    assert "3.5123 ± 0.0400" in row and "3.6789 ± 0.0500" in row
    assert "joint law at the validation proxy: predicted vs measured 1.2% apart" in text
    assert "rank correlation 1.00" in text


def test_without_a_target_scale_there_is_no_such_row(tmp_path):
    text = _print(RECOMMENDATION, tmp_path)
    assert "predicted at N=" not in text and "validation proxy" not in text
    assert "4.1000 ± 0.0100" in text and "verdict: recommended beats natural" in text
