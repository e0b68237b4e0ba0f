"""The Pareto view: recommendation.json's ``pareto`` section (a synthetic front whose guard rail
splits it) and the guard rails checked on validation, in the view model and the report."""

import json
import shutil

import numpy as np
import pytest

from mixopt.report import write_report
from mixopt.reporting.jobdata import load_job_dir
from mixopt.reporting.views import ViewOptions, build_views
from mixopt.reporting.views.pareto import pareto_view
from mixopt.spec.objective import ConstraintSpec
from mixopt.verdict import check_guard_rails
from tests.mixopt.reporting.jobs import DOMAINS, split_report

FAST = ViewOptions(analysis=False)
CODE_LIMIT, BIBLE_LIMIT = 2.80, 2.95


def _point(i: int, chosen: int | None = None) -> dict:
    """Front point ``i``: more code weight buys a lower code loss at a higher objective."""
    code = 0.1 + 0.05 * i
    weights = {"code": code, "bible": (1 - code) / 2, "dictionary": (1 - code) / 2}
    predicted = {"objective": 2.0 + 0.02 * i, "val_loss/code": 3.0 - 0.03 * i}
    predicted["val_loss/bible"] = 2.9
    meets = [predicted["val_loss/code"] <= CODE_LIMIT, predicted["val_loss/bible"] <= BIBLE_LIMIT]
    return {
        "weights": weights,
        "predicted": predicted,
        "feasible": all(meets),
        "meets": meets,
        "chosen": i == chosen,
    }


def pareto_section(
    reason: str = "lowest predicted objective among mixtures meeting every guard rail",
):
    feasible = [i for i in range(12) if _point(i)["feasible"]]
    best = min(feasible, key=lambda i: _point(i)["predicted"]["objective"])
    front = [_point(i, best) for i in range(12)]
    chosen = {**_point(best, best), "violation": 0.0, "on_front": True, "reason": reason}
    rails = [
        ("val_loss/code", CODE_LIMIT, chosen["predicted"]["val_loss/code"]),
        ("val_loss/bible", BIBLE_LIMIT, 2.9),
    ]
    return {
        "strategy": "pareto",
        "predictor": "gp",
        "simulated": 20_030,
        "feasible_simulated": 4_000,
        "guard_rails": [
            {
                "metric": m,
                "limit": lim,
                "predicted": p,
                "met": p <= lim,
                "any_simulated_meets": True,
            }
            for m, lim, p in rails
        ],
        "front": front,
        "chosen": chosen,
    }, best


def validated_checks() -> tuple[list[dict], dict]:
    """Guard rails checked on a synthetic validation: code held against natural, bible broke."""

    def summary(code: list[float], bible: list[float]) -> dict:
        seeds = {
            str(s): {"val_loss/code": c, "val_loss/bible": b}
            for s, (c, b) in enumerate(zip(code, bible, strict=True))
        }
        return {
            "metrics": {
                "val_loss/code": float(np.mean(code)),
                "val_loss/bible": float(np.mean(bible)),
            },
            "metrics_by_seed": seeds,
        }

    validation = {
        "recommended": summary([2.70, 2.74], [2.99, 3.01]),
        "natural": summary([2.80, 2.83], [2.90, 2.92]),
    }
    rules = [
        ConstraintSpec(metric="val_loss/code", max_increase=0.0, relative_to="natural"),
        ConstraintSpec(metric="val_loss/bible", max_value=BIBLE_LIMIT),
    ]
    return [c.to_dict() for c in check_guard_rails(rules, validation)], validation


def with_pareto(job_dir, to, section, checks):
    shutil.copytree(job_dir, to)
    path = to / "recommendation.json"
    document = json.loads(path.read_text())
    document["pareto"], document["guard_rails"] = section, checks
    path.write_text(json.dumps(document))
    return to


@pytest.fixture(scope="module")
def pareto_job(finished_job, tmp_path_factory):
    section, _ = pareto_section()
    checks, _ = validated_checks()
    return with_pareto(finished_job, tmp_path_factory.mktemp("pareto") / "job", section, checks)


def test_the_view_shows_the_front_the_chosen_point_and_each_guard_rail(pareto_job):
    section, best = pareto_section()
    checks, validation = validated_checks()
    view = build_views(load_job_dir(pareto_job), FAST)["views"]["pareto"]
    assert view["available"] and view["metric"] == "val_loss/code"
    assert view["front_size"] == 12
    assert view["front_feasible"] == sum(p["feasible"] for p in section["front"])
    assert view["domains"] == list(DOMAINS)
    chosen = view["chosen"]
    assert chosen["weights"] == pytest.approx(_point(best)["weights"])
    assert (
        chosen["on_front"]
        and chosen["feasible"]
        and chosen["reason"] == section["chosen"]["reason"]
    )

    code, bible = view["guard_rails"]
    assert code["metric"] == "val_loss/code" and code["limit"] == CODE_LIMIT
    assert code["predicted"] == pytest.approx(_point(best)["predicted"]["val_loss/code"])
    natural = validation["natural"]["metrics"]["val_loss/code"]
    assert code["validated_limit"] == pytest.approx(natural)
    assert code["validated"] == pytest.approx(validation["recommended"]["metrics"]["val_loss/code"])
    assert code["held"] is True and code["outcome"] == "held" and code["rule"] == checks[0]["rule"]
    assert bible["held"] is False and bible["outcome"] == "broken"
    assert bible["excess"] == pytest.approx(3.00 - BIBLE_LIMIT)
    assert bible["sentence"] == checks[1]["sentence"]


def test_the_figure_puts_the_front_on_objective_against_the_first_guard_rail(pareto_job):
    section, best = pareto_section()
    figure = pareto_view(load_job_dir(pareto_job))["figure"]
    traces = {t["name"]: t for t in figure["data"]}
    feasible = [p for p in section["front"] if p["feasible"]]
    infeasible = [p for p in section["front"] if not p["feasible"]]
    ok, over = traces["front, meets every guard rail"], traces["front, breaks a guard rail"]
    assert ok["x"] == pytest.approx([p["predicted"]["objective"] for p in feasible])
    assert ok["y"] == pytest.approx([p["predicted"]["val_loss/code"] for p in feasible])
    assert over["y"] == pytest.approx([p["predicted"]["val_loss/code"] for p in infeasible])
    assert all(y > CODE_LIMIT for y in over["y"]) and all(y <= CODE_LIMIT for y in ok["y"])
    limit = traces["limit on val_loss/code"]
    assert limit["y"] == [CODE_LIMIT, CODE_LIMIT] and limit["line"]["dash"] == "dash"
    marked = traces["chosen"]
    assert marked["x"] == pytest.approx([_point(best)["predicted"]["objective"]])
    assert marked["y"] == pytest.approx([_point(best)["predicted"]["val_loss/code"]])
    assert marked["x"][0] == pytest.approx(min(ok["x"]))  # the best objective within the limit


def test_other_strategies_say_why_there_is_no_pareto_view(finished_job, tmp_path):
    view = pareto_view(load_job_dir(finished_job))
    assert not view["available"] and "search.strategy: pareto" in view["reason"]
    job = load_job_dir(finished_job)
    job.job_spec, job.recommendation = None, None
    assert "recorded with the recommendation" in pareto_view(job)["reason"]
    broken = with_pareto(finished_job, tmp_path / "odd", {"front": "not a list", "chosen": 3}, 7)
    view = pareto_view(load_job_dir(broken))
    assert view["available"] and view["front_size"] == 0 and view["figure"] is None
    assert view["guard_rails"] == [] and view["chosen"]["reason"] == ""


def test_the_report_carries_the_view_and_its_figure_escaped(tmp_path, finished_job):
    hostile = "</script><script>alert('flag')</script>"
    section, _ = pareto_section(reason=hostile)
    checks, _ = validated_checks()
    checks[0]["rule"] = "<img src=x onerror=alert(1)>"
    job_dir = with_pareto(finished_job, tmp_path / "job", section, checks)
    result = write_report(job_dir, tmp_path / "report.html", options=FAST)
    text = result.html.read_text()
    outside, model = split_report(text)
    assert hostile not in text and "alert('flag')" not in outside
    assert "<img src=x" not in outside and "</script" not in model
    inlined = json.loads(model)["views"]["pareto"]
    assert inlined["chosen"]["reason"] == hostile
    assert inlined["guard_rails"][0]["rule"] == checks[0]["rule"]
    assert (tmp_path / "report-figures" / "pareto.png").stat().st_size > 10_000
    assert '["pareto", "Pareto"]' in text  # the page script draws the section
