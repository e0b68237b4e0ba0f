"""Export a job's recommended mixture in the formats training stacks read.

Formats now: ``json`` and ``yaml`` (the mixture, its predicted objective and provenance). Every
format is built from ``recommendation.json`` in the job directory, never from live state, so an
export can be repeated at any time and gives the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mixopt.errors import MixoptError
from mixopt.loop import RECOMMENDATION_FILE


def load_recommendation(job_dir: str | Path) -> dict[str, Any]:
    job_dir = Path(job_dir)
    path = job_dir / RECOMMENDATION_FILE
    if not job_dir.is_dir():
        raise MixoptError(f"{job_dir}: not a job directory")
    if not path.is_file():
        raise MixoptError(f"{job_dir}: no {RECOMMENDATION_FILE} (the job has not finished)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MixoptError(f"{path}: unreadable recommendation: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise MixoptError(f"{path}: no 'weights' mapping in the recommendation")
    return data


def mixture_document(recommendation: dict[str, Any]) -> dict[str, Any]:
    """The exported content: the mixture first, then what it is expected to achieve and why."""
    weights = {d: round(float(w), 6) for d, w in recommendation["weights"].items()}
    return {
        "mixture": weights,
        "objective": recommendation.get("objective"),
        "predicted_objective": recommendation.get("predicted_objective"),
        "predicted_std": recommendation.get("predicted_std"),
        "verdict": recommendation.get("verdict"),
        "job": recommendation.get("job"),
        "data_hash": recommendation.get("data_hash"),
    }


def _as_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def _as_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {"json": _as_json, "yaml": _as_yaml}


def export(job_dir: str | Path, fmt: str) -> str:
    if fmt not in FORMATS:
        raise MixoptError(f"unknown export format {fmt!r}; available: {', '.join(sorted(FORMATS))}")
    return FORMATS[fmt](mixture_document(load_recommendation(job_dir)))
