"""PNG files of the view model's figures, drawn with matplotlib (offline, no browser).

The figures are the same Plotly figure dicts the pages draw; this module draws the subset of
Plotly the views use: scatter (markers, lines, step lines, error bars), bar (grouped, stacked,
error bars), heatmap (with cell text), line shapes and log axes. Not a general Plotly renderer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEATMAPS = {"RdBu": "RdBu_r", "Viridis": "viridis"}  # Plotly's RdBu runs blue → red


def _numbers(values: Sequence[Any] | None) -> list[float]:
    return [math.nan if v is None else float(v) for v in (values or [])]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("text", ""))
    return "" if value is None else str(value)


def render_png(fig: dict[str, Any], path: Path, *, width: float = 9.0, dpi: int = 110) -> Path:
    """Draw the Plotly figure dict ``fig`` into ``path`` (a PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    layout = fig.get("layout", {})
    height = float(layout.get("height", 380)) / 380 * 4.2
    figure, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        traces = fig.get("data", [])
        bars = [t for t in traces if t.get("type") == "bar"]
        categories: list[str] = []
        for trace in traces:
            if trace.get("type") in ("bar",) or layout.get("xaxis", {}).get("type") == "category":
                for x in trace.get("x", []):
                    if str(x) not in categories:
                        categories.append(str(x))
        stacked = layout.get("barmode") == "stack"
        bottoms = np.zeros(len(categories))
        width_each = 0.8 / max(1, len(bars)) if not stacked else 0.8
        bar_index = 0
        for trace in traces:
            kind = trace.get("type", "scatter")
            name = trace.get("name")
            if kind == "bar":
                xs = [categories.index(str(x)) for x in trace.get("x", [])]
                ys = np.array(_numbers(trace.get("y")))
                offset = 0.0 if stacked else (bar_index - (len(bars) - 1) / 2) * width_each
                marker = trace.get("marker", {}).get("color")
                errors = trace.get("error_y", {}).get("array") if trace.get("error_y") else None
                positions = np.array(xs, dtype=float) + offset
                base = bottoms[xs] if stacked else None
                ax.bar(
                    positions,
                    np.nan_to_num(ys),
                    width=width_each,
                    bottom=base,
                    color=marker,
                    label=name,
                    yerr=None if errors is None else _numbers(errors),
                    capsize=3 if errors is not None else 0,
                    alpha=float(trace.get("opacity", 1.0)),
                )
                if stacked:
                    bottoms[xs] += np.nan_to_num(ys)
                bar_index += 1
            elif kind == "scatter":
                raw_x = trace.get("x", [])
                if categories:
                    xs_plot = [
                        categories.index(str(x)) if str(x) in categories else math.nan
                        for x in raw_x
                    ]
                else:
                    xs_plot = _numbers(raw_x)
                y_values = _numbers(trace.get("y"))
                mode = trace.get("mode", "markers")
                line = trace.get("line", {})
                marker = trace.get("marker", {})
                colour = line.get("color") if "lines" in mode else marker.get("color")
                if isinstance(colour, list):
                    colour = None
                kwargs: dict[str, Any] = {"label": name, "color": colour}
                if "lines" in mode:
                    kwargs["linestyle"] = {"dash": "--", "dot": ":"}.get(line.get("dash", ""), "-")
                    kwargs["linewidth"] = float(line.get("width", 1.5))
                    if line.get("shape") == "hv":
                        kwargs["drawstyle"] = "steps-post"
                if "markers" in mode:
                    kwargs["marker"] = "o"
                    kwargs["markersize"] = float(marker.get("size", 6)) * 0.75
                    if "open" in str(marker.get("symbol", "")):
                        kwargs["markerfacecolor"] = "none"
                if "lines" not in mode:
                    kwargs["linestyle"] = "none"
                errors = trace.get("error_y", {}).get("array") if trace.get("error_y") else None
                if errors is not None:
                    ax.errorbar(xs_plot, y_values, yerr=_numbers(errors), elinewidth=0.8, **kwargs)
                else:
                    ax.plot(xs_plot, y_values, **kwargs)
            elif kind == "heatmap":
                z = np.array([_numbers(row) for row in trace.get("z", [])], dtype=float)
                cmap = HEATMAPS.get(str(trace.get("colorscale", "Viridis")), "viridis")
                image = ax.imshow(
                    z,
                    cmap=cmap,
                    vmin=trace.get("zmin"),
                    vmax=trace.get("zmax"),
                    aspect="auto",
                )
                xs, ys = trace.get("x", []), trace.get("y", [])
                ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=30, ha="right")
                ax.set_yticks(range(len(ys)), [str(y) for y in ys])
                for i, row in enumerate(trace.get("text") or []):
                    for j, cell in enumerate(row):
                        if cell:
                            ax.text(j, i, str(cell), ha="center", va="center", fontsize=8)
                figure.colorbar(image, ax=ax, label=_text(trace.get("colorbar", {}).get("title")))
        for shape in layout.get("shapes", []):
            if shape.get("type") != "line":
                continue
            style = {"linestyle": ":", "color": shape.get("line", {}).get("color", "#999"), "lw": 1}
            if shape.get("yref") == "paper" and shape.get("x0") == shape.get("x1"):
                ax.axvline(float(shape["x0"]), **style)
            elif shape.get("xref") == "paper" and shape.get("y0") == shape.get("y1"):
                ax.axhline(float(shape["y0"]), **style)
        if categories and not any(t.get("type") == "heatmap" for t in traces):
            rotate = layout.get("xaxis", {}).get("tickangle") is not None or len(categories) > 8
            ax.set_xticks(
                range(len(categories)),
                categories,
                rotation=60 if rotate else 0,
                ha="right" if rotate else "center",
                fontsize=8 if rotate else 10,
            )
        for axis, set_scale in (("xaxis", ax.set_xscale), ("yaxis", ax.set_yscale)):
            if layout.get(axis, {}).get("type") == "log":
                set_scale("log")
        y_range = layout.get("yaxis", {}).get("range")
        if y_range and all(v is not None for v in y_range):
            ax.set_ylim(float(y_range[0]), float(y_range[1]))
        if layout.get("yaxis", {}).get("autorange") == "reversed" and not any(
            t.get("type") == "heatmap" for t in traces
        ):
            ax.invert_yaxis()
        ax.set_title(_text(layout.get("title")), fontsize=11, loc="left")
        ax.set_xlabel(_text(layout.get("xaxis", {}).get("title")))
        ax.set_ylabel(_text(layout.get("yaxis", {}).get("title")))
        if not any(t.get("type") == "heatmap" for t in traces):
            ax.grid(True, alpha=0.3)
        named = [t for t in traces if t.get("name") and t.get("type") != "heatmap"]
        if len(named) > 1 and layout.get("showlegend", True):
            ax.legend(fontsize=8, ncols=min(4, len(named)), loc="best")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path
