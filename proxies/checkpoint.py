"""Checkpoints that let an interrupted training run resume exactly where it stopped.

A checkpoint is one file, ``<checkpoint_dir>/checkpoint.pt``, holding everything the next steps
depend on: the step reached, the model and optimizer states (an MoE's aux-free bias included),
each data stream's random generator states, the per-step train losses so far (the curve is built
from all of them), the evaluations so far and torch's RNG state. The trainer resumes from it, so
a run that was killed and restarted returns the same result as one that never stopped.

It is written atomically (a temporary file, then ``os.replace``), so a kill during the write
leaves the previous checkpoint intact. It carries a fingerprint of the run (model, training
settings that change the result, mixtures, seeds, data files; ``run_parts``): resuming a
different run from it raises ValueError instead of silently mixing two runs. ``Progress`` is what
it holds besides the model, optimizer and streams. Files are read with
``torch.load(weights_only=True)`` (no arbitrary code on load).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from proxies.config import GPTConfig, TrainConfig
    from proxies.tokens import DomainTokens

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1


@dataclass
class Progress:
    """The state of a run that a checkpoint saves besides the model, optimizer and streams."""

    n_models: int
    step: int = 0
    losses: list[list[float]] = field(default_factory=list)  # per model, one per step
    evals: list[list[dict[str, Any]]] = field(default_factory=list)  # per model
    stage_tokens: list[list[dict[str, int]]] = field(default_factory=list)  # model, stage, domain

    def __post_init__(self) -> None:
        self.losses = self.losses or [[] for _ in range(self.n_models)]
        self.evals = self.evals or [[] for _ in range(self.n_models)]

    def add_losses(self, pending: list[torch.Tensor]) -> None:
        """Append per-step (K,) device tensors (one sync)."""
        if pending:
            rows = torch.stack([p.reshape(-1) for p in pending]).float().cpu().T.tolist()
            for k, row in enumerate(rows):
                self.losses[k].extend(row)
            pending.clear()


def run_fingerprint(parts: dict[str, Any]) -> str:
    """A short stable hash of plain data describing a run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_parts(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    mixtures: Sequence[Mapping[str, float]],
    seeds: Sequence[int],
    stacked: bool,
    evals: Sequence[DomainTokens] = (),
) -> dict[str, Any]:
    """What a run's result depends on, as plain data (its checkpoint fingerprint hashes it)."""
    volatile = {
        "threads",
        "device",
        "compile",
        "checkpoint_dir",
        "checkpoint_every",
        "keep_checkpoint",
        "trunk_dir",
    }
    train = {k: v for k, v in asdict(train_cfg).items() if k not in volatile and k != "seed"}
    if not train_cfg.stages:  # an unstaged run keeps the fingerprint it had before stages
        del train["stages"]
    extra: dict[str, Any] = {}
    if evals:
        extra["evals"] = [(d.name, str(d.val_path), d.dtype) for d in evals]
    if train_cfg.init_from is not None:  # the run depends on the file's bytes, not its name
        extra["init_digest"] = file_digest(init_file(train_cfg.init_from))
    return {
        **extra,
        "arch": model_cfg.arch,
        "model": model_cfg.to_dict(),
        "train": train,
        "mixtures": [dict(sorted(m.items())) for m in mixtures],
        "seeds": list(seeds),
        "domains": [(d.name, str(d.train_path), d.dtype) for d in domains],
        "stacked": stacked,
    }


def file_digest(path: str | Path) -> str:
    """A short content hash of a file (a run started from it depends on its bytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def checkpoint_path(directory: str | Path) -> Path:
    return Path(directory) / CHECKPOINT_FILE


def init_file(path: str | Path) -> Path:
    """The checkpoint file ``TrainConfig.init_from`` names: the file, or a folder's
    ``checkpoint.pt``. Raises ValueError when there is none."""
    given = Path(path)
    file = given / CHECKPOINT_FILE if given.is_dir() else given
    if not file.is_file():
        raise ValueError(f"init_from {path}: no such checkpoint file")
    return file


def load_model_state(path: str | Path) -> dict[str, Any]:
    """The model weights of the checkpoint ``path`` names (a trainer checkpoint's ``model``, or
    a bare state dict), read with ``weights_only``. Raises ValueError naming the file."""
    file = init_file(path)
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, ...
        raise ValueError(
            f"init_from {file}: not a readable checkpoint ({type(error).__name__}: {error})"
        ) from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"init_from {file}: holds no model weights")
    return dict(state)


def save_checkpoint(directory: str | Path, state: dict[str, Any], *, fingerprint: str) -> Path:
    """Write ``state`` (tensors and plain data) atomically; returns the checkpoint's path."""
    path = checkpoint_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, "fingerprint": fingerprint, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    directory: str | Path, *, fingerprint: str, map_location: torch.device | str = "cpu"
) -> dict[str, Any] | None:
    """The saved state, or None when there is no usable checkpoint.

    A checkpoint that cannot be read (truncated by a full disk, corrupted) is moved aside to
    ``checkpoint.pt.corrupt`` with a warning and the run starts over: losing progress is better
    than losing the trial. Raises ValueError when the checkpoint belongs to another run or
    another format (that is a mistake to report, not damage to repair).
    """
    path = checkpoint_path(directory)
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        warnings.warn(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); moved it to "
            f"{aside.name} and training starts over",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a training state")
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {state.get('format')!r}, not {FORMAT}")
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} was written by a different run (fingerprint "
            f"{state.get('fingerprint')} != {fingerprint}); remove it or use another "
            "checkpoint_dir"
        )
    return state


def remove_checkpoint(directory: str | Path) -> None:
    """Delete the checkpoint file, and the directory when that leaves it empty."""
    path = checkpoint_path(directory)
    path.unlink(missing_ok=True)
    folder = path.parent
    if folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
