"""Reading a spec: YAML → validated :class:`JobSpec`, errors as one line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mixopt.errors import SpecError
from mixopt.spec.errors import format_validation_error
from mixopt.spec.job import JobSpec
from mixopt.spec.probes import check_probe_files


def parse_spec(
    data: Any,
    *,
    source: str = "spec",
    base_dir: Path | None = None,
    check_files: bool | None = None,
) -> JobSpec:
    """Validate a spec mapping; resolve relative paths against ``base_dir``.

    ``check_files`` (default: when ``base_dir`` is given, i.e. a spec being loaded, not one a
    job already saved) reads and checks the probe tasks' files; the service passes False and
    checks them once its policy has allowed the paths
    (:func:`mixopt.spec.probes.check_probe_files`)."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the spec must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, source)) from None
    if base_dir is not None:
        try:  # relative paths may only now be seen to name the same files
            _resolve_paths(spec, base_dir)
            spec.check_evals()
        except ValidationError as error:
            raise SpecError(format_validation_error(error, source)) from None
        except ValueError as error:
            raise SpecError(f"{source}: {error}") from None
    read_files = base_dir is not None if check_files is None else check_files
    if read_files:
        try:
            check_probe_files(spec.probes)
        except ValueError as error:
            raise SpecError(f"{source}: {error}") from None
    return spec


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)


def _absolute(value: str, base_dir: Path) -> str:
    expanded = Path(value).expanduser()
    return str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())


def _resolve_paths(spec: JobSpec, base_dir: Path) -> None:
    for source in (*spec.domains, *spec.evals):
        source.paths = [_absolute(p, base_dir) for p in source.paths]
    if spec.cluster is not None:
        spec.cluster.paths = [_absolute(p, base_dir) for p in spec.cluster.paths]
    for probe in spec.probes:
        probe.path = _absolute(probe.path, base_dir)
    if spec.continual is not None and spec.continual.init_from:
        spec.continual.init_from = _absolute(spec.continual.init_from, base_dir)
    if spec.tokenizer.path:
        spec.tokenizer.path = _absolute(spec.tokenizer.path, base_dir)
    spec.data.cache_dir = _absolute(spec.data.cache_dir, base_dir)
    spec.output_dir = _absolute(spec.output_dir, base_dir)
