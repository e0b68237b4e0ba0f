"""The files the pages are drawn with: views.js and style.css (here), Plotly.js (from the
``plotly`` package, which ships ``plotly.min.js``; nothing is fetched from the internet)."""

from __future__ import annotations

from pathlib import Path

from mixopt.errors import MixoptError

ASSETS_DIR = Path(__file__).with_name("assets")


def asset(name: str) -> Path:
    path = ASSETS_DIR / name
    if not path.is_file():
        raise MixoptError(f"mixopt is missing its page asset {path}; reinstall mixopt")
    return path


def plotly_js() -> Path:
    """Path of the ``plotly.min.js`` the ``plotly`` package ships."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise MixoptError("pages need Plotly.js from the 'plotly' package: pip install plotly")
    for location in spec.submodule_search_locations:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise MixoptError("the installed 'plotly' package has no package_data/plotly.min.js")
