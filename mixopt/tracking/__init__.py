"""Tracking: where a job reports its trials. MLflow in practice, a null tracker otherwise."""

from __future__ import annotations

from mixopt.tracking.base import NullTracker, Tracker

__all__ = ["NullTracker", "Tracker"]
