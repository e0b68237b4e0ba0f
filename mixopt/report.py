"""``mixopt report JOB_DIR``: one self-contained HTML file with every view of a job, plus PNGs.

The HTML inlines Plotly.js, the page script the dashboard uses (``reporting/assets/views.js``),
its style and the job's view model (:func:`mixopt.reporting.views.build_views`), so it opens
offline in any browser and shows the same numbers as the dashboard: the spec, the
recommendation with its interval, the validation verdict, the trace, mixtures (and, for a
staged job, the mixture over training), predictor
quality, domain effects, validation at scale, the recommendation at the target scale, MoE
expert load and the trials with MLflow links.
The PNGs (``<report>-figures/*.png``) are drawn from the same figures with matplotlib.

    from mixopt.report import write_report
    result = write_report("runs/demo-20261125-090654")   # runs/demo-.../report.html
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixopt.atomic import write_atomic
from mixopt.errors import MixoptError

REPORT_FILE = "report.html"


@dataclass
class ReportResult:
    html: Path
    pngs: list[Path] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)


def figures(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model's figures by file name, in page order (one MoE trial: the default one)."""
    views = model.get("views", {})
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, view: str, key: str) -> None:
        fig = views.get(view, {}).get(key)
        if views.get(view, {}).get("available") and fig:
            out[name] = fig

    add("trace", "trace", "figure")
    add("mixtures", "mixtures", "figure_bars")
    add("trial_mixtures", "mixtures", "figure_trials")
    add("stages", "stages", "figure")
    add("predictor", "predictor", "figure")
    add("partial_dependence", "effects", "figure_dependence")
    add("sensitivity", "effects", "figure_sensitivity")
    add("interaction", "effects", "figure_interaction")
    add("validation", "validation", "figure")
    add("pareto", "pareto", "figure")
    add("scale", "scale", "figure")
    add("scale_gap", "scale", "figure_gap")
    add("moe_load", "moe", "figure_max_load")
    moe = views.get("moe", {})
    if moe.get("available"):
        default = moe.get("default_trial")
        fig = (moe.get("figures_trial") or {}).get(default)
        if fig:
            out[f"moe_experts_{default}"] = fig
    return out


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no '</' that could close it)."""
    return json.dumps(data, allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(model: dict[str, Any]) -> str:
    from mixopt.reporting.assets import asset, plotly_js

    title = f"mixopt report: {model['job']['name']}"

    def inline(path: Path) -> str:  # a script's text cannot contain its own end tag
        return path.read_text().replace("</script", "<\\/script")

    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{asset('style.css').read_text()}</style>",
            f"<script>{inline(plotly_js())}</script>",
            "</head><body>",
            '<div class="topbar"><span>mixopt report</span></div>',
            '<main id="job"><noscript>This report draws its views with JavaScript; the PNG '
            "figures next to it show the same plots.</noscript></main>",
            f'<script id="mixopt-model" type="application/json">{script_json(model)}</script>',
            f"<script>{inline(asset('views.js'))}</script>",
            "<script>MixoptViews.renderJob(document.getElementById('job'), "
            "JSON.parse(document.getElementById('mixopt-model').textContent), "
            '{mode: "report"});</script>',
            "</body></html>",
        ]
    )


def write_report(
    job_dir: str | Path,
    out: str | Path | None = None,
    *,
    png: bool = True,
    options: Any = None,
) -> ReportResult:
    """Write ``out`` (default ``JOB_DIR/report.html``) and, with ``png``, its figures as PNGs
    in ``<out stem>-figures/``. ``options``: a :class:`~mixopt.reporting.views.ViewOptions`."""
    from mixopt.reporting.jobdata import load_job_dir
    from mixopt.reporting.views import build_views

    job = load_job_dir(job_dir)
    model = build_views(job, options)
    target = Path(out) if out is not None else Path(job_dir) / REPORT_FILE
    if target.exists() and target.is_dir():
        raise MixoptError(f"{target}: is a directory; give a file name for the report")
    write_atomic(target, render_html(model))  # a link is written through, never replaced
    result = ReportResult(html=target, model=model)
    if png:
        from mixopt.reporting.png import render_png

        folder = target.with_name(f"{target.stem}-figures")
        for name, fig in figures(model).items():
            result.pngs.append(render_png(fig, folder / f"{name}.png"))
    return result
