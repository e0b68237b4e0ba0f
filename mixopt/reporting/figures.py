"""Plotly figure dicts (``{"data": [...], "layout": {...}}``): what views.js draws with
Plotly.js and :mod:`mixopt.reporting.png` draws with matplotlib. Only plain JSON values here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixopt.verdict import AIOLI, DOREMI, SEARCH_CHOICE

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
)
MIXTURE_COLORS = {
    "recommended": "#E45756",
    SEARCH_CHOICE: "#72B7B2",
    "proxy_optimum": "#F58518",
    "current": "#B279A2",
    "natural": "#4C78A8",
    "uniform": "#BAB0AC",
    "best_trial": "#54A24B",
    DOREMI: "#EECA3B",
    AIOLI: "#9D755D",
}
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross", "x")


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def layout(title: str, x_title: str = "", y_title: str = "", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        "xaxis": {"title": {"text": x_title}, "zeroline": False, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "zeroline": False, "automargin": True},
        "margin": {"l": 60, "r": 20, "t": 48, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "closest",
        "paper_bgcolor": "white",
        "plot_bgcolor": "#fafafa",
        "height": 380,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def figure(data: list[dict[str, Any]], fig_layout: dict[str, Any]) -> dict[str, Any]:
    return {"data": data, "layout": fig_layout}


def jsonable(value: Any) -> Any:
    """``value`` with numpy types turned into Python ones and non-finite floats into None
    (JSON has no NaN: the page shows a dash)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
