"""Admitting a submitted spec: parse the body, validate it, and enforce the service's policy.

A spec sent to the service runs with the server's permissions, so before it becomes a job:

- every file it reads (domain paths, directories walked, glob matches, symlink targets, the
  tokenizer file) must resolve inside the configured data roots, and never inside the service's
  own state directory (other users' jobs live there);
- every place it writes (``output_dir``, ``data.cache_dir``, a file/SQLite MLflow URI) must
  resolve inside the data roots or the state directory;
- it may not import code (``proxy.metrics`` entries ``module:function``) unless the deployment
  allows it, nor pick its own Ray cluster (the service decides where trials run).

Relative paths resolve against the ``base_dir`` the client sends (the spec file's folder), else
against the first data root. Each problem is a :class:`Rejected` naming the field, with the HTTP
status the API answers: 400 unreadable body, 413 too large once YAML aliases are expanded, 422
invalid spec, 403 forbidden by policy.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.service.settings import ServiceSettings
from mixopt.spec import JobSpec

MAX_SPEC_VALUES = 100_000  # scalars + containers once YAML aliases are expanded
MAX_FILES_CHECKED = 500_000
_GLOB_CHARS = frozenset("*?[")


class Rejected(MixoptError):
    """A submission the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------- parsing


def parse_body(body: bytes, content_type: str | None) -> Any:
    """The spec mapping from a request body: JSON when the content type says so, else YAML."""
    if not body.strip():
        raise Rejected("empty body: send the spec as YAML or JSON", 400)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("the body is not UTF-8 text", 400) from None
    is_json = "json" in (content_type or "").lower()
    try:
        data = _parse_json(text) if is_json else _parse_yaml(text)
    except RecursionError:
        raise Rejected("the spec is nested too deeply", 400) from None
    _check_size(data)
    return data


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise Rejected(
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}", 400
        ) from None


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise Rejected(f"malformed YAML: {problem}{where}", 400) from None


def _check_size(data: Any) -> None:
    """Refuse specs that expand (through YAML aliases) into more than MAX_SPEC_VALUES values."""
    count = 0
    stack = [data]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_SPEC_VALUES:
            raise Rejected(
                f"the spec expands to more than {MAX_SPEC_VALUES} values (YAML aliases?)", 413
            )
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


# ------------------------------------------------------------------------------------ admitting


def admit(
    data: Any, settings: ServiceSettings, *, base_dir: str | None = None, source: str = "spec"
) -> JobSpec:
    """A validated spec whose paths are absolute and allowed; its cache is the service's unless
    the spec names one (the caller sets ``output_dir``). Raises :class:`Rejected`."""
    from mixopt.spec import parse_spec

    base = Path(base_dir) if base_dir else settings.data_roots[0]
    if not base.is_absolute():
        raise Rejected(f"base_dir must be an absolute path, got {base_dir!r}", 422)
    given = data if isinstance(data, dict) else {}
    cache_given = isinstance(given.get("data"), dict) and "cache_dir" in given["data"]
    output_given = "output_dir" in given
    try:
        spec = parse_spec(data, source=source, base_dir=base)
    except MixoptError as error:
        raise Rejected(str(error), 422) from None
    except Exception as error:  # a validator bug must still be a clear 4xx, not a 500
        raise Rejected(f"{source}: invalid spec ({type(error).__name__}: {error})", 422) from None
    Policy(settings).check(spec, cache_given=cache_given, output_given=output_given)
    if not cache_given:
        spec.data.cache_dir = str(settings.cache_dir)
    return spec


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


class Policy:
    """The service's rules on what a spec may read, write and run."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.read_roots = settings.data_roots
        self.write_roots = [*settings.data_roots, settings.state_dir]
        self.private = settings.state_dir  # never readable through a spec

    def check(self, spec: JobSpec, *, cache_given: bool, output_given: bool) -> None:
        """Raise :class:`Rejected` for the first rule ``spec`` breaks. Where the spec leaves
        ``output_dir`` or ``data.cache_dir`` at their defaults the service picks them."""
        for i, domain in enumerate(spec.domains):
            for j, entry in enumerate(domain.paths):
                self._check_source(f"domains.{i}.paths.{j}", entry)
        if spec.tokenizer.path:
            where = "tokenizer.path"
            path = self._readable(where, spec.tokenizer.path)
            if not path.is_file():
                raise Rejected(f"{where}: {spec.tokenizer.path}: no such file", 422)
        if output_given:
            self._writable("output_dir", spec.output_dir)
        if cache_given:
            self._writable("data.cache_dir", spec.data.cache_dir)
        self._check_mlflow_uri(spec.tracking.mlflow_uri)
        if not self.settings.allow_code_hooks:
            for k, name in enumerate(spec.proxy.metrics):
                if ":" in name:
                    raise Rejected(
                        f"proxy.metrics.{k}: {name!r} imports code; this service runs only "
                        "registered metric hooks (a deployment may allow code hooks)",
                        403,
                    )
        if spec.resources.ray_address:
            raise Rejected(
                "resources.ray_address: the service decides where trials run "
                "(set RAY_ADDRESS for the server instead)",
                403,
            )

    # ---------------------------------------------------------------------------- reading

    def _readable(self, where: str, value: str) -> Path:
        path = Path(value).expanduser().resolve()
        if not _inside(path, self.read_roots) or _inside(path, [self.private]):
            raise Rejected(
                f"{where}: {value} is outside the allowed data roots {self._roots()}", 403
            )
        return path

    def _roots(self) -> str:
        return "[" + ", ".join(str(r) for r in self.read_roots) + "]"

    def _check_source(self, where: str, entry: str) -> None:
        """A domain entry: a file, a directory (walked) or a glob pattern (expanded)."""
        raw = Path(entry).expanduser()
        if _GLOB_CHARS.intersection(entry) and not raw.exists():
            if ".." in raw.parts:
                raise Rejected(f"{where}: '..' is not allowed in a glob pattern ({entry})", 403)
            prefix = Path(*[p for p in _static_prefix(raw.parts)])
            self._readable(where, str(prefix))
            matches = sorted(glob.glob(str(raw), recursive=True))
            if not matches:
                raise Rejected(f"{where}: pattern {entry!r} matches no files", 422)
            budget = [MAX_FILES_CHECKED]
            for match in matches:
                self._check_tree(where, Path(match), budget)
            return
        path = self._readable(where, entry)
        if not path.exists():
            raise Rejected(f"{where}: {entry}: no such file or directory", 422)
        self._check_tree(where, raw, [MAX_FILES_CHECKED])

    def _check_tree(self, where: str, start: Path, budget: list[int]) -> None:
        """``start`` and, for a directory, everything under it (symlinks followed) resolve inside
        the data roots."""
        real = self._readable(where, str(start))
        if not real.is_dir():
            return
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(real, followlinks=True):
            here = os.path.realpath(dirpath)
            if here in seen:
                dirnames[:] = []
                continue
            seen.add(here)
            self._readable(where, here)
            for name in filenames + dirnames:
                budget[0] -= 1
                if budget[0] < 0:
                    raise Rejected(
                        f"{where}: more than {MAX_FILES_CHECKED} files to check; "
                        "name fewer or narrower paths",
                        422,
                    )
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    self._readable(where, os.path.realpath(full))

    # ---------------------------------------------------------------------------- writing

    def _writable(self, where: str, value: str) -> Path:
        path = Path(value).expanduser().resolve()
        if not _inside(path, self.write_roots):
            roots = ", ".join(str(r) for r in self.write_roots)
            raise Rejected(f"{where}: {value} is outside the allowed roots [{roots}]", 403)
        return path

    def _check_mlflow_uri(self, uri: str | None) -> None:
        if not uri:
            return
        where = "tracking.mlflow_uri"
        scheme, sep, rest = uri.partition(":")
        scheme = scheme.lower() if sep else ""
        if scheme in ("http", "https"):
            return
        if scheme == "file" or not sep:
            self._writable(where, rest.removeprefix("//") if sep else uri)
            return
        if scheme == "sqlite":
            path = rest.removeprefix("///") if rest.startswith("///") else ""
            if not path.startswith("/"):
                raise Rejected(f"{where}: {uri}: use sqlite:////absolute/path.db", 422)
            self._writable(where, path)
            return
        raise Rejected(
            f"{where}: {uri}: the service accepts http(s) MLflow servers or file/SQLite stores "
            "inside the allowed roots",
            403,
        )


def _static_prefix(parts: tuple[str, ...]) -> list[str]:
    """The leading components of a glob pattern that hold no wildcard."""
    prefix: list[str] = []
    for part in parts:
        if _GLOB_CHARS.intersection(part):
            break
        prefix.append(part)
    return prefix or ["."]
