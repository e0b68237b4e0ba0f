"""Job directories for the reporting and dashboard tests, made in seconds.

The search loop, data stage, runs table, state and (optionally) MLflow are the real ones; the
proxies are replaced by :func:`noisy_moe_execute`, whose losses are the known synthetic mixing
law plus seed noise (so validation has a spread) and which reports MoE expert counts over
training (so the MoE view has data). ``tests/dashboards`` and the slow tests also use real
proxies (``--runner local``).
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.runners.base import RunnerEvent
from mixopt.spec import JobSpec
from mixopt.testing import ScriptedRunner, synthetic_execute
from mixopt.trials import TrialRequest
from tests.conftest import QUICK_SEARCH, corpus_domains

DOMAINS = ("code", "bible", "dictionary")
SEARCH = QUICK_SEARCH
N_SEARCH = 8 + 2 * 3
N_VALIDATE = 5 * 2  # recommended, uniform, natural, halfway to natural, current; 2 seeds each
CURRENT = {"code": 0.5, "bible": 0.25, "dictionary": 0.25}
EXPERTS, LAYERS = 4, 2


def job_spec(root: Path, name: str = "synthetic", **sections: Any) -> JobSpec:
    values: dict[str, Any] = {
        "name": name,
        "output_dir": str(root / "runs"),
        "domains": corpus_domains(),
        "data": {"cache_dir": str(root / "cache")},
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
        "proxy": {"seq_len": 16, "arch": "moe"},
        "search": dict(SEARCH),
        "validate": {"seeds": 2, "baselines": ["uniform", "natural"], "current": CURRENT},
        "tracking": {"enabled": False},
    }
    values.update(sections)
    return JobSpec.model_validate(values)


def max_load(counts: list[list[int]]) -> float:
    """proxies.evaluate's moe/max_load: the worst layer's most loaded expert over the mean."""
    return max(max(layer) / (sum(layer) / len(layer)) for layer in counts)


def noisy_moe_execute(request: TrialRequest) -> dict[str, Any]:
    result = synthetic_execute(request)
    key = zlib.crc32(repr(sorted(request.weights.items())).encode())
    rng = np.random.default_rng([request.seed, key])
    result["metrics"] = {k: v + 0.01 * rng.standard_normal() for k, v in result["metrics"].items()}
    tokens = int(result["tokens"])
    evals = []
    for fraction in (1 / 3, 2 / 3, 1.0):
        counts = rng.integers(50, 400, size=(LAYERS, EXPERTS)).tolist()
        evals.append(
            {"step": 0, "tokens": int(tokens * fraction), "metrics": {}, "expert_counts": counts}
        )
    result["evals"] = evals[:-1]
    result["expert_counts"] = evals[-1]["expert_counts"]
    result["metrics"]["moe/max_load"] = max_load(result["expert_counts"])
    result["metrics"]["moe/dropped_tokens"] = 0.0
    return result


def make_job(root: Path, *, tracker: Any = None, name: str = "synthetic", **sections: Any) -> Path:
    """A finished job directory under ``root``."""
    from mixopt.job import JobDir
    from mixopt.search import SearchJob

    spec = job_spec(root, name, **sections)
    job_dir = JobDir.new(spec, root / name).path
    SearchJob(spec, job_dir, runner=ScriptedRunner(noisy_moe_execute), tracker=tracker).run()
    return job_dir


STAGES = [  # a fixed main stage, then the searched anneal
    {"name": "main", "share": 0.7, "weights": {"code": 0.2, "bible": 0.5, "dictionary": 0.3}},
    {"name": "anneal", "share": 0.3, "search": True},
]
STAGED_TARGET_TOKENS = 20_000.0  # small enough for the corpus's repetition caps


def make_staged_job(root: Path) -> Path:
    """A finished job under ``root`` whose mixture has :data:`STAGES` (the view "mixture over
    training")."""
    return make_job(root, name="staged", stages=STAGES, target={"tokens": STAGED_TARGET_TOKENS})


class BlockingRunner(ScriptedRunner):
    """Finishes ``finish`` trials, then holds the rest until ``release`` is set: a job that is
    running while a test looks at it."""

    def __init__(self, finish: int) -> None:
        super().__init__(noisy_moe_execute)
        self.finish = finish
        self.done = 0
        self.release = threading.Event()
        self.blocked = threading.Event()

    def poll(self, timeout: float) -> list[RunnerEvent]:
        if self.done >= self.finish and not self.release.is_set():
            self.blocked.set()
            self.release.wait(timeout)
            return []
        events = []
        while self._queue and (self.done < self.finish or self.release.is_set()):
            request = self._queue.popleft()
            events.append(RunnerEvent(request.trial_id, result=self.execute(request)))
            self.done += 1
        return events


class RunningJob:
    """A job running in a background thread, held after ``finish`` trials until ``release()``."""

    def __init__(self, root: Path, finish: int, name: str = "running", **sections: Any) -> None:
        from mixopt.job import JobDir
        from mixopt.search import SearchJob

        spec = job_spec(root, name, **sections)
        self.job_dir = JobDir.new(spec, root / name).path
        self.runner = BlockingRunner(finish)
        self.job = SearchJob(spec, self.job_dir, runner=self.runner)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.job.run()
        except BaseException as error:  # reported by the test that waits for the job
            self.error = error

    def start(self, timeout: float = 60.0) -> RunningJob:
        self.thread.start()
        if not self.runner.blocked.wait(timeout):
            raise AssertionError(f"the job did not reach {self.runner.finish} trials: {self.error}")
        return self

    def release(self, timeout: float = 60.0) -> None:
        self.runner.release.set()
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error


_shared: dict[str, Path] = {}
_shared_lock = threading.Lock()


def shared_finished_job() -> Path:
    """One finished, MLflow-tracked synthetic job per test session (the reporting and dashboard
    tests read it; none of them writes to it)."""
    import atexit
    import shutil
    import tempfile

    with _shared_lock:
        if "finished" not in _shared:
            root = Path(tempfile.mkdtemp(prefix="mixopt-report-job-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            spec = job_spec(root, "synthetic", tracking={"enabled": True})
            job_dir = root / "synthetic"
            job_dir.mkdir()
            from mixopt.job import JobDir
            from mixopt.search import SearchJob

            SearchJob(
                spec,
                job_dir,
                runner=ScriptedRunner(noisy_moe_execute),
                tracker=spec.tracking.build_tracker(JobDir(job_dir)),
            ).run()
            _shared["finished"] = job_dir
        return _shared["finished"]


# ------------------------------------------------------------------------------ target scale


class PowerLaw:
    """A stand-in for the target-scale law: each mixture's objective is a weighted sum of
    per-domain power laws in model size N and tokens D, with a spread growing with N."""

    floors = (1.6, 2.1, 2.4)

    def value(self, w: np.ndarray, n: float, d: float) -> float:
        return float(np.asarray(w) @ (np.array(self.floors) + 40.0 / n**0.3 + 90.0 / d**0.28))

    def std(self, n: float) -> float:
        return 0.005 * float(np.log10(n))

    def predict(self, W: np.ndarray, n: float, d: float) -> tuple[np.ndarray, np.ndarray]:
        return np.array([self.value(w, n, d) for w in W]), np.array([self.std(n)] * len(W))


TARGET = (1e8, 2e9)  # the target's N, D in the synthetic section
PROXY_SIZE = (3e5, 6e6)  # the search proxy's
VALIDATION_SIZE = (1.2e6, 2.4e7)


def target_scale_section(flags: list[str] | None = None) -> dict[str, Any]:
    """A ``target_scale`` section as :func:`mixopt.search.scale.at_target` and the driver
    write it, with its numbers from :class:`PowerLaw` (the curves by the real ``curves``)."""
    from mixopt.search.scale import curves

    law = PowerLaw()
    mixtures = {
        "recommended": np.array([0.2, 0.5, 0.3]),
        "proxy_optimum": np.array([0.5, 0.3, 0.2]),
        "natural": np.array([0.3, 0.3, 0.4]),
        "uniform": np.full(3, 1 / 3),
    }

    def as_dict(w: np.ndarray) -> dict[str, float]:
        return {d: float(x) for d, x in zip(DOMAINS, w, strict=True)}

    described = {
        label: {
            "weights": as_dict(w),
            "objective": law.value(w, *TARGET),
            "objective_std": law.std(TARGET[0]),
            "objective_at_proxy": law.value(w, *PROXY_SIZE),
            "losses": {f"val_loss/{d}": 2.0 for d in DOMAINS},
        }
        for label, w in mixtures.items()
    }
    rng = np.random.default_rng(3)
    rows = [
        {
            "label": label,
            "predicted": law.value(w, *VALIDATION_SIZE),
            "predicted_std": law.std(VALIDATION_SIZE[0]),
            "observed": law.value(w, *VALIDATION_SIZE) + 0.02 * rng.standard_normal(),
            "at_search_scale": law.value(w, *PROXY_SIZE),
        }
        for label, w in mixtures.items()
    ]
    predicted = np.array([r["predicted"] for r in rows])
    observed = np.array([r["observed"] for r in rows])
    return {
        "available": True,
        "params": TARGET[0],
        "tokens": TARGET[1],
        "law": "joint",
        "fitted_on": "joint law on 40 evaluations of 10 trials at 2 model size(s)",
        "scores": {
            "joint": {"mape": 0.031, "spearman": 0.9},
            "bimix": {"mape": 0.12, "spearman": float("nan")},
            "nested": {"error": "too few sizes"},
        },
        "shrink": 0.01,
        "unshrunk": {"weights": as_dict(mixtures["proxy_optimum"]), "predicted": 2.5},
        "flags": list(flags or []),
        "mixtures": described,
        "curves": curves(law, mixtures, PROXY_SIZE, TARGET),
        "calibration": {
            "scale": {"params": VALIDATION_SIZE[0], "tokens": VALIDATION_SIZE[1]},
            "mixtures": rows,
            "mape": float(np.mean(np.abs(predicted - observed) / observed)),
            "spearman_law": 0.8,
            "spearman_search_scale": 0.4,
        },
    }


def with_target_scale(job_dir: Path, to: Path, section: Any) -> Path:
    """A copy of ``job_dir`` at ``to`` whose recommendation.json has ``section`` as its
    ``target_scale`` (None: without one)."""
    import json
    import shutil

    shutil.copytree(job_dir, to)
    path = to / "recommendation.json"
    document = json.loads(path.read_text())
    document.pop("target_scale", None)
    if section is not None:
        document["target_scale"] = section
    path.write_text(json.dumps(document))
    return to


def split_report(text: str) -> tuple[str, str]:
    """A report's HTML outside its inlined view model, and the model's JSON text."""
    match = re.search(
        r'<script id="mixopt-model" type="application/json">(.*?)</script>', text, re.S
    )
    assert match is not None, "the report has no inlined view model"
    return text[: match.start(1)] + text[match.end(1) :], match.group(1)


def inlined_model(text: str) -> dict[str, Any]:
    """The view model a report carries inline."""
    model: dict[str, Any] = json.loads(split_report(text)[1])
    return model
