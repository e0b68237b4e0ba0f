"""Admitting a submitted spec: parse the body, validate it, and apply the service's policy.

The body is YAML or JSON, refused when it is not UTF-8, malformed, nested too deeply or larger
than :data:`MAX_SPEC_VALUES` once YAML aliases are expanded. The spec must then validate, obey
the service's policy (:mod:`mixopt.service.policy`: what it may read, where it writes, what it
may track to and run) and fit the machine (:func:`mixopt.runners.capacity.check_capacity`).
Relative paths resolve against the ``base_dir`` the client sends (the spec file's folder), else
against the first data root. Each problem is a :class:`Rejected` naming the field, with the HTTP
status the API answers: 400 unreadable body, 413 too large once YAML aliases are expanded, 422
invalid spec or too large for the machine, 403 forbidden by policy or beyond a quota.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.service.policy import JobPolicy, Rejected
from mixopt.service.settings import DEFAULT_USER, ServiceSettings
from mixopt.spec import JobSpec

__all__ = ["MAX_SPEC_VALUES", "Rejected", "admit", "parse_body"]

MAX_SPEC_VALUES = 100_000  # scalars + containers once YAML aliases are expanded


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
    data: Any,
    settings: ServiceSettings,
    *,
    user: str = DEFAULT_USER,
    base_dir: str | None = None,
    source: str = "spec",
    output_dir: Path | None = None,
) -> JobSpec:
    """A validated spec whose paths are absolute and allowed, placed where the service decides
    (``user``'s cache, ``output_dir``, the service's tracking server). Raises :class:`Rejected`."""
    from mixopt.runners.capacity import CapacityError, check_capacity
    from mixopt.spec import parse_spec
    from mixopt.spec.probes import check_probe_files

    base = Path(base_dir) if base_dir else settings.data_roots[0]
    if not base.is_absolute():
        raise Rejected(f"base_dir must be an absolute path, got {base_dir!r}", 422)
    try:
        spec = parse_spec(data, source=source, base_dir=base, check_files=False)
    except MixoptError as error:
        raise Rejected(str(error), 422) from None
    except Exception as error:  # a validator bug must still be a clear 4xx, not a 500
        raise Rejected(f"{source}: invalid spec ({type(error).__name__}: {error})", 422) from None
    policy = JobPolicy.for_user(settings, user)
    policy.check(spec)
    try:  # probe files are read only once the policy allowed their paths
        check_probe_files(spec.probes)
    except ValueError as error:
        raise Rejected(f"{source}: {error}", 422) from None
    try:
        check_capacity(spec, runner=settings.runner)
    except CapacityError as error:
        raise Rejected(str(error), 422) from None
    policy.place(spec, output_dir)
    return spec
