"""Runners execute trial requests somewhere: in this process, or as Ray tasks."""

from __future__ import annotations

from mixopt.runners.base import Runner, RunnerEvent
from mixopt.runners.local import InProcessRunner

__all__ = ["InProcessRunner", "Runner", "RunnerEvent"]
