"""Server paths out of what the API sends: responses, job errors, specs and log tails.

A user needs the paths of their own data (which they named) and of their job's files relative to
the job; they have no need for where the service keeps its state, its Python installation or its
home directory, and a traceback in a job's log would otherwise show all three. A
:class:`Redactor` rewrites, longest first: the job's folder to a relative path (``run/job.log``),
the state directory to ``<state>``, the interpreter's prefixes and library folders to
``<python>``, and the server's home directory to ``~``. The data roots stay as they are.
"""

from __future__ import annotations

import functools
import re
import sys
import sysconfig
from pathlib import Path

_JOB_MARK = "\0job\0"


def _python_dirs() -> list[str]:
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            found.add(path)
    return [p for p in found if p and p != "/"]


@functools.lru_cache(maxsize=256)
def _pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``prefixes`` (longest first, so the most specific wins) ending at a path
    component's end."""
    ordered = sorted(prefixes, key=len, reverse=True)
    return re.compile("(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![\w.\-])")


class Redactor:
    """Rewrites server paths in text (see the module docstring); ``keep`` paths (the data
    roots) are left as they are even where they lie under a redacted folder."""

    def __init__(self, state_dir: Path, *, keep: list[Path] | None = None) -> None:
        rules: dict[str, str] = {}
        for path in _python_dirs():
            rules[path] = "<python>"
            rules[str(Path(path).resolve())] = "<python>"
        home = str(Path.home())
        if home != "/":
            rules[home] = "~"
        rules[str(state_dir)] = "<state>"
        for kept in keep or []:
            rules[str(kept)] = str(kept)
        self._rules = rules

    def __call__(self, text: str, job_folder: str | Path | None = None) -> str:
        """``text`` with server paths rewritten (``job_folder``'s relative to it)."""
        if not text:
            return text
        rules = dict(self._rules)
        if job_folder is not None:
            rules[str(job_folder)] = _JOB_MARK
        out = _pattern(tuple(rules)).sub(lambda m: rules[m.group(0)], text)
        return out.replace(_JOB_MARK + "/", "").replace(_JOB_MARK, ".")

    def relative(self, path: str | Path, state_dir: Path) -> str:
        """``path`` relative to the state directory (e.g. ``jobs/<id>/run``)."""
        try:
            return str(Path(path).relative_to(state_dir))
        except ValueError:
            return self(str(path))
