"""A study file answers the same: two copies of it ask for the same mixtures."""

import numpy as np

from mixopt.study import Study

DOMAINS = ["web", "code", "math", "books"]


def loss(weights: dict[str, float]) -> float:
    w = np.array([weights[d] for d in DOMAINS])
    return float(2.0 + np.exp(w @ np.array([-3.0, -1.0, 0.5, 1.0])) + 0.5 * np.exp(-4.0 * w[1]))


def test_two_copies_of_a_study_ask_the_same(tmp_path):
    study = Study(DOMAINS, objective="val_loss", strategy="bo", initial=6, seed=3)
    for suggestion in study.ask(8):
        study.tell(suggestion.mixture_id, {"val_loss": loss(suggestion.weights)})
    study.ask(2)  # left pending: the next proposals condition on them
    study.save(tmp_path / "a.json")
    (tmp_path / "b.json").write_bytes((tmp_path / "a.json").read_bytes())
    first = Study.load(tmp_path / "a.json").ask(3)
    second = Study.load(tmp_path / "b.json").ask(3)
    assert [s.source for s in first] == ["asked"] * 3
    assert [s.weights for s in first] == [s.weights for s in second]  # exactly equal
    assert len({tuple(s.weights.values()) for s in first}) == 3
