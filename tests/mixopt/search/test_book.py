"""The trial book: fixed trial ids, resuming against the saved plan, best and counts."""

from __future__ import annotations

import pytest

from mixopt.errors import MixoptError
from mixopt.search.book import TrialBook
from mixopt.trials import Stage, Trial, TrialStatus


def _done(trial: Trial, objective: float) -> Trial:
    trial.status = TrialStatus.COMPLETED
    trial.result = {"objective": objective}
    return trial


def test_ids_are_handed_out_in_creation_order():
    book = TrialBook()
    ids = [book.new({"a": 1.0}, 0, 0).trial_id for _ in range(3)]
    assert ids == ["t0000", "t0001", "t0002"] and len(book) == 3


def test_resume_finds_each_saved_trial_and_refuses_an_edited_plan():
    first = TrialBook()
    done = _done(first.new({"a": 0.3, "b": 0.7}, 0, 0), 2.0)
    first.new({"a": 0.6, "b": 0.4}, 1, 0)
    again = TrialBook(first.trials, where="job")
    assert again.resuming
    assert again.new({"a": 0.9, "b": 0.1}, 0, 0) is done  # the saved trial, weights and all
    assert [t.trial_id for t in again.saved_round(1)] == ["t0001"]
    with pytest.raises(MixoptError, match=r"t0001 .* does not match the job's plan"):
        again.new({"a": 0.5, "b": 0.5}, 0, 0, stage=Stage.VALIDATE, label="uniform")


def test_best_respects_the_sign_and_the_filter():
    book = TrialBook()
    low, high = _done(book.new({}, 0, 0), 1.0), _done(book.new({}, 0, 0), 3.0)
    _done(book.new({}, -1, 0, stage=Stage.VALIDATE), 0.1)  # validation trials never count
    nan = _done(book.new({}, 0, 0), float("nan"))
    assert book.best(1.0) is low and book.best(-1.0) is high
    assert book.best(1.0, lambda t: t is not low) is high
    assert nan not in (book.best(1.0), book.best(-1.0))
    book.trials[-1].status = TrialStatus.ABANDONED
    assert book.counts() == (3, 1)
