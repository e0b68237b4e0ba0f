"""Shared trunks: train a staged run's fixed leading stages once per seed, branch every run there.

A staged run whose leading stages have fixed weights, followed by a stage that takes the run's own
mixture (the searched stage of an anneal-stage search), reaches the same state at the end of the
fixed stages whatever its mixture: stage ``k`` draws from stream ``k`` of the seed, so the
searched stage's stream is untouched until that stage starts. With ``TrainConfig.trunk_dir``
set, the first run of a seed trains those stages (the *trunk*) and saves the state at their end
to ``<trunk_dir>/<fingerprint>/checkpoint.pt``; every other run of the same seed loads it and
trains only its own stages. A run then costs its own stages' tokens, and its result is the one
it would have had from scratch (the same state, the same streams: exactly so on CPU).

The fingerprint covers everything the trunk's state depends on (model, training settings, all
stages, seed, data files) and not the run's mixture, so trunks are content-addressed: a resumed
job, or another job of the same settings, finds them. A file lock per trunk makes concurrent
runs of one seed wait for the run that trains it instead of training it twice. Trunks are kept
(the job directory owns them); a trunk that cannot be read is moved aside and trained again.

Continual pretraining (``TrainConfig.base``): every run starts from the weights of a *base
proxy*, an ordinary run on the base mixture for the base's tokens, trained once per seed and kept
next to the trunks (``base_state``); the run itself gets a fresh optimizer and its own schedule
(a re-warmup, as when a team continues from a released checkpoint). Its metrics then include
``forgetting/<loss>``: how much each validation loss rose over the base's (``forgetting``).
``TrainConfig.init_from`` starts it from a checkpoint file instead (a team's own proxy of the
same model); the base's metrics are then those of that checkpoint, evaluated first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxies.checkpoint import (
    load_checkpoint,
    load_model_state,
    run_fingerprint,
    run_parts,
    save_checkpoint,
)
from proxies.stages import FORGETTING_PREFIX, StageConfig

if TYPE_CHECKING:
    from proxies.config import GPTConfig, TrainConfig
    from proxies.tokens import DomainTokens


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created, with its folder), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def trunk_stage_count(stages: Sequence[StageConfig]) -> int:
    """How many leading stages form a trunk: the fixed-weight stages before the first stage
    that takes the run's mixture (0 when the first stage takes it, or no stage does)."""
    for index, stage in enumerate(stages):
        if stage.weights is None:
            return index
    return 0


@dataclass(frozen=True)
class Trunk:
    """The shared trunk of one run: the first ``steps`` optimizer steps, saved under
    ``<trunk_dir>/<fingerprint>``."""

    trunk_dir: Path
    steps: int
    fingerprint: str

    @classmethod
    def of(
        cls,
        trunk_dir: str | None,
        stages: Sequence[StageConfig],
        steps_per_stage: Sequence[int],
        run_parts: dict[str, Any],
    ) -> Trunk | None:
        """The run's trunk, or None (no trunk folder, or no fixed leading stage).
        ``run_parts`` describes the run as its checkpoint fingerprint does; its ``mixtures``
        entry is dropped (the trunk does not depend on the run's mixture)."""
        count = trunk_stage_count(stages)
        if trunk_dir is None or count == 0:
            return None
        steps = sum(steps_per_stage[:count])
        parts = {k: v for k, v in run_parts.items() if k != "mixtures"}
        return cls(Path(trunk_dir), steps, run_fingerprint({**parts, "trunk_steps": steps}))

    @property
    def directory(self) -> Path:
        return self.trunk_dir / self.fingerprint

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while a run looks for the trunk and, when it is missing, trains and saves it."""
        return file_lock(self.trunk_dir / f"{self.fingerprint}.lock")

    def load(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The trunk's saved state, or None when it was not trained yet (or was unreadable)."""
        state = load_checkpoint(
            self.directory, fingerprint=self.fingerprint, map_location=map_location
        )
        if state is not None and state.get("step") != self.steps:
            raise ValueError(
                f"trunk {self.directory} holds step {state.get('step')}, not {self.steps}"
            )
        return state

    def save(self, state: dict[str, Any]) -> Path:
        if state.get("step") != self.steps:
            raise ValueError(f"a trunk is saved at step {self.steps}, got {state.get('step')}")
        return save_checkpoint(self.directory, state, fingerprint=self.fingerprint)


# -- continual pretraining: every run starts from a base proxy ----------------------------------


def base_config(train_cfg: TrainConfig, seed: int, directory: str) -> TrainConfig:
    """The base proxy's training: ``train_cfg.base``'s tokens, one mixture, its own schedule,
    its final state kept in ``directory``."""
    assert train_cfg.base is not None
    return dataclasses.replace(
        train_cfg, train_tokens=train_cfg.base.train_tokens, stages=(), base=None, seed=seed,
        trunk_dir=None, checkpoint_dir=directory, checkpoint_every=0, keep_checkpoint=True,
        eval_every=0,
    )  # fmt: skip


def base_state(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    seed: int,
    evals: Sequence[DomainTokens] = (),
) -> tuple[dict[str, Any], dict[str, float]]:
    """The base proxy of ``seed`` (``train_cfg.base``): its model weights and final metrics.

    Trained once per seed and kept under ``<trunk_dir>/base-<fingerprint>`` (file-locked like a
    trunk); without a trunk folder, trained in a temporary folder for this run alone.
    """
    from proxies.train import train_proxy  # the base is an ordinary run

    base = train_cfg.base
    assert base is not None
    with contextlib.ExitStack() as stack:
        if train_cfg.trunk_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="base-")))
        else:
            root = Path(train_cfg.trunk_dir)
        probe = base_config(train_cfg, seed, str(root))
        parts = run_parts(model_cfg, probe, domains, [base.weights], [seed], False, evals)
        fingerprint = run_fingerprint(parts)
        folder = root / f"base-{fingerprint}"
        with file_lock(root / f"base-{fingerprint}.lock"):  # one run per seed trains it
            result = train_proxy(  # resumes at the end when the base exists: evaluation only
                model_cfg, base_config(train_cfg, seed, str(folder)), domains, base.weights,
                evals=evals,
            )  # fmt: skip
        state = load_checkpoint(folder, fingerprint=fingerprint)
        if state is None:
            raise RuntimeError(f"the base proxy's final state is missing from {folder}")
        return state["model"], result.metrics


def initial_states(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    seeds: Sequence[int],
    evals: Sequence[DomainTokens] = (),
) -> list[tuple[dict[str, Any], dict[str, float] | None]]:
    """Per seed, the weights a continual run starts from and the base's metrics (None: to be
    measured by evaluating those weights): ``init_from``'s checkpoint, or each seed's base
    proxy; [] for a run from scratch."""
    if train_cfg.init_from is not None:
        state = load_model_state(train_cfg.init_from)
        return [(state, None) for _ in seeds]
    if train_cfg.base is not None:
        return [base_state(model_cfg, train_cfg, domains, seed, evals) for seed in seeds]
    return []


def load_into(model: Any, state: dict[str, Any], where: str) -> None:
    """``model.load_state_dict(state)``, a mismatch raised as a ValueError naming ``where``."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()
        raise ValueError(
            f"{where}: the checkpoint does not fit this proxy's model ({' '.join(detail[:3])})"
        ) from None


def forgetting(metrics: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    """``forgetting/<metric>``: each loss (val_loss/, bpb/) relative to the base's, minus 1."""
    return {
        f"{FORGETTING_PREFIX}{name}": value / base[name] - 1.0
        for name, value in metrics.items()
        if name.startswith(("val_loss/", "bpb/")) and base.get(name, 0.0) > 0
    }
