"""Job states: one vocabulary, its mapping to the service's, and the planned-trials formula."""

from __future__ import annotations

import pytest

from mixopt.job import JobStatus, planned_trials
from mixopt.service.schemas import FINAL_STATES, JobState


def test_every_status_maps_to_a_service_state():
    service_states = set(JobState.__args__)  # type: ignore[attr-defined]
    for status in JobStatus:
        assert status.service_state() in service_states
    assert JobStatus.INTERRUPTED.service_state() == "cancelled"
    assert JobStatus.PREPARING.service_state() == "running"


def test_final_and_active_states_partition_the_running_job():
    for status in JobStatus:
        assert not (status.final and status.active)
        assert status.final == (status.service_state() in FINAL_STATES)
    assert not JobStatus.COMPLETED.resumable and JobStatus.FAILED.resumable


def test_parse_accepts_only_known_states():
    assert JobStatus.parse("running") is JobStatus.RUNNING
    assert JobStatus.parse("exploded") is None and JobStatus.parse(None) is None


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        # validation: recommended, uniform, natural, the best trial and halfway to natural
        ({"search": {"initial_trials": 8, "rounds": 2, "trials_per_round": 3}}, 8 + 6 + 5 * 2),
        (
            {
                "search": {"initial_trials": 8, "rounds": 1, "trials_per_round": 2},
                "validate": {"enabled": False},
            },
            10,
        ),
        (
            {
                "search": {"initial_trials": 4, "rounds": 1, "trials_per_round": 2},
                "validate": {"baselines": ["uniform"], "seeds": 3, "current": None},
            },
            6 + 3 * 3,
        ),
        (
            {
                "search": {"initial_trials": 4, "rounds": 1, "trials_per_round": 2},
                "validate": {"baselines": ["uniform"], "seeds": 3, "path": 0},
            },
            6 + 2 * 3,
        ),
        (  # a guard rail relative to natural trains the natural mixture in the initial design
            {
                "search": {
                    "initial_trials": 4,
                    "rounds": 1,
                    "trials_per_round": 2,
                    "strategy": "pareto",
                },
                "objective": {"constraints": [{"metric": "val_loss/code", "max_increase": 0.01}]},
                "validate": {"enabled": False},
            },
            4 + 1 + 2,
        ),
    ],
)
def test_planned_trials(make_spec, sections, expected):
    assert planned_trials(make_spec(**sections)) == expected
