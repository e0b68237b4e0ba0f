"""Downstream probe tasks as token ids: what ``proxies.probes`` scores, torch-free.

A probe task is a multiple-choice / cloze task scored by log-likelihood (the lm-evaluation-harness
way): each item has a context and two or more choice continuations, and the model's pick is the
choice it gives the highest log-likelihood after the context. Here every text is already token
ids (the data stage tokenizes each task with the job's tokenizer), and each choice carries the
UTF-8 byte length of its text, for the per-byte normalised score (harness ``acc_norm`` by bytes).

A task is saved as one small JSON file (:func:`save_probe_task`) and travels to workers by path
(:class:`ProbeFile`), like a domain's token files. The metrics a task reports are
``probe/<name>/<metric>`` for each of :data:`PROBE_METRICS` (:func:`probe_metric_names`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_METRICS = ("accuracy", "accuracy_norm", "margin")
PROBE_PREFIX = "probe"
_FORMAT = "mixopt-probe-task-v1"


def probe_metric_names(name: str) -> list[str]:
    """The metrics task ``name`` reports: ``probe/<name>/accuracy|accuracy_norm|margin``."""
    return [f"{PROBE_PREFIX}/{name}/{metric}" for metric in PROBE_METRICS]


@dataclass(frozen=True)
class ProbeItem:
    """One tokenized item: the context's ids, each choice's ids and text bytes, the answer."""

    context: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]
    choice_bytes: tuple[int, ...]
    answer: int

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"a probe item needs at least 2 choices, got {len(self.choices)}")
        if len(self.choice_bytes) != len(self.choices):
            raise ValueError("a probe item needs one byte length per choice")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(
                f"answer {self.answer} is not a choice index (0..{len(self.choices) - 1})"
            )
        if not self.context:
            raise ValueError("a probe item's context must hold at least one token")
        if any(not choice for choice in self.choices):
            raise ValueError("every choice of a probe item must hold at least one token")
        if any(n <= 0 for n in self.choice_bytes):
            raise ValueError("every choice of a probe item must have a positive byte length")


@dataclass(frozen=True)
class ProbeTask:
    """A named probe task: its tokenized items (at least one)."""

    name: str
    items: tuple[ProbeItem, ...]

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"probe task name must be non-empty without '/', got {self.name!r}")
        if not self.items:
            raise ValueError(f"probe task {self.name!r} has no items")

    def max_token_id(self) -> int:
        return max(
            max(max(item.context), *(max(choice) for choice in item.choices)) for item in self.items
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "name": self.name,
            "items": [
                {
                    "context": list(item.context),
                    "choices": [list(c) for c in item.choices],
                    "choice_bytes": list(item.choice_bytes),
                    "answer": item.answer,
                }
                for item in self.items
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeTask:
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a probe task file (format {data.get('format')!r})")
        items = tuple(
            ProbeItem(
                context=tuple(int(t) for t in item["context"]),
                choices=tuple(tuple(int(t) for t in c) for c in item["choices"]),
                choice_bytes=tuple(int(n) for n in item["choice_bytes"]),
                answer=int(item["answer"]),
            )
            for item in data["items"]
        )
        return cls(str(data["name"]), items)


def save_probe_task(task: ProbeTask, path: str | Path) -> None:
    """Write ``task`` as JSON (the caller makes the write atomic where it needs to be)."""
    Path(path).write_text(json.dumps(task.to_dict(), separators=(",", ":")))


def load_probe_task(path: str | Path) -> ProbeTask:
    """Read a task written by :func:`save_probe_task`; a bad file raises ValueError naming it."""
    try:
        data = json.loads(Path(path).read_text())
        return ProbeTask.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"probe task file {path}: cannot load ({error})") from None


@dataclass(frozen=True)
class ProbeFile:
    """A tokenized probe task by path: what a trial request carries to its worker."""

    name: str
    path: str

    def load(self) -> ProbeTask:
        task = load_probe_task(self.path)
        if task.name != self.name:
            raise ValueError(
                f"probe task file {self.path} holds task {task.name!r}, not {self.name!r}"
            )
        return task


def load_probe_files(files: Sequence[ProbeFile]) -> list[ProbeTask]:
    return [f.load() for f in files]
