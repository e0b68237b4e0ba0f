"""What a spec may read, write and run on a shared service, checked twice: when the spec is
submitted (admission) and again in the job's own process, before anything is read or trained.

A spec sent to the service runs with the server's permissions, so:

- every file it reads (domain, eval set, probe and ``continual.init_from`` paths, directories
  walked, glob matches, symbolic-link targets, the tokenizer file) must resolve inside the
  service's data roots and never inside its state directory (other users' jobs, the jobs
  database and the caches live there); the job process checks its files again when it reads them
  (:class:`mixopt.data.sources.ReadRoots`);
- where it writes is the service's choice, never the spec's: its job directory
  (``<state>/jobs/<id>``) and its user's cache (``<state>/cache/<user>``) replace whatever
  ``output_dir`` and ``data.cache_dir`` the spec names;
- it may track to the service's own MLflow server only (``tracking.mlflow_uri`` unset, or equal
  to the one the service was started with): a job never fetches a URL its user chose;
- it may not import code (``proxy.metrics`` entries ``module:function``) unless the deployment
  allows it, nor pick its own Ray cluster;
- it must fit its user's quotas (:mod:`mixopt.service.quotas`).

The service hands each job process its policy in ``$MIXOPT_JOB_POLICY`` (and its data roots in
``$MIXOPT_READ_ROOTS``); ``mixopt run`` and ``mixopt resume`` enforce it when it is set. Each
broken rule is a :class:`Rejected` naming the field, with the HTTP status the API answers (403
forbidden by policy, 422 invalid).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots
from mixopt.errors import MixoptError
from mixopt.service.quotas import QuotaExceeded, Quotas

if TYPE_CHECKING:
    from mixopt.service.settings import ServiceSettings
    from mixopt.spec import JobSpec

POLICY_ENV = "MIXOPT_JOB_POLICY"
MAX_FILES_CHECKED = 500_000
_GLOB_CHARS = frozenset("*?[")


class Rejected(MixoptError):
    """A submission (or a job) the service refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobPolicy:
    """The rules one user's jobs run under (built from the service's settings, never a spec)."""

    data_roots: tuple[Path, ...]
    private: tuple[Path, ...]  # never readable through a spec: the service's state directory
    cache_dir: Path  # the user's data cache
    mlflow_uri: str | None = None  # the one tracking server jobs may use; None: their own SQLite
    allow_code_hooks: bool = False
    quotas: Quotas = field(default_factory=Quotas)

    @classmethod
    def for_user(cls, settings: ServiceSettings, user: str) -> JobPolicy:
        return cls(
            data_roots=tuple(settings.data_roots),
            private=(settings.state_dir,),
            cache_dir=settings.user_cache_dir(user),
            mlflow_uri=settings.mlflow_uri,
            allow_code_hooks=settings.allow_code_hooks,
            quotas=settings.quotas,
        )

    @property
    def read_roots(self) -> ReadRoots:
        return ReadRoots(self.data_roots, self.private)

    # ------------------------------------------------------------------------- the rules

    def check(self, spec: JobSpec) -> None:
        """Raise :class:`Rejected` for the first rule ``spec`` breaks (reads, tracking, code,
        cluster, the per-job quotas)."""
        listed = spec.domains
        if spec.cluster is not None:  # its stand-in domains all name these paths
            listed = []
            for j, entry in enumerate(spec.cluster.paths):
                self._check_source(f"domains.cluster.paths.{j}", entry)
        for section, sources in (("domains", listed), ("evals", spec.evals)):
            for i, source in enumerate(sources):
                for j, entry in enumerate(source.paths):
                    self._check_source(f"{section}.{i}.paths.{j}", entry)
        for i, probe in enumerate(spec.probes):
            self._check_source(f"probes.{i}.path", probe.path)
        if spec.continual is not None and spec.continual.init_from:
            self._check_source("continual.init_from", spec.continual.init_from)
        if spec.tokenizer.path:
            where = "tokenizer.path"
            path = self._readable(where, spec.tokenizer.path)
            if not path.is_file():
                raise Rejected(f"{where}: {spec.tokenizer.path}: no such file", 422)
        self._check_tracking(spec.tracking.mlflow_uri)
        if not self.allow_code_hooks:
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
        try:
            self.quotas.check_job(spec)
        except QuotaExceeded as error:
            raise Rejected(str(error), error.status) from None

    def place(self, spec: JobSpec, output_dir: Path | None = None) -> None:
        """Where the job writes, chosen by the service: the user's cache, its job folder, and
        the service's tracking server when the spec names none."""
        spec.data.cache_dir = str(self.cache_dir)
        if output_dir is not None:
            spec.output_dir = str(output_dir)
        if spec.tracking.mlflow_uri is None and self.mlflow_uri is not None:
            spec.tracking.mlflow_uri = self.mlflow_uri

    def enforce(self, spec: JobSpec) -> None:
        """In the job's process: the spec still obeys every rule, and writes where the service
        placed it (a spec edited on disk, or a job started by hand, is refused)."""
        self.check(spec)
        if Path(spec.data.cache_dir).expanduser().resolve() != self.cache_dir:
            raise Rejected(
                "data.cache_dir: the service chooses each user's cache; this job's spec names "
                "another folder",
                403,
            )

    # ------------------------------------------------------------------------- reading

    def _readable(self, where: str, value: str) -> Path:
        path = Path(value).expanduser().resolve()
        if not self.read_roots.permits(path):
            raise Rejected(
                f"{where}: {value} is outside the allowed data roots {self._roots()}", 403
            )
        return path

    def _roots(self) -> str:
        return "[" + ", ".join(str(r) for r in self.data_roots) + "]"

    def _check_source(self, where: str, entry: str) -> None:
        """A domain or eval set entry: a file, a directory (walked) or a glob pattern (expanded)."""
        raw = Path(entry).expanduser()
        if _GLOB_CHARS.intersection(entry) and not raw.exists():
            if ".." in raw.parts:
                raise Rejected(f"{where}: '..' is not allowed in a glob pattern ({entry})", 403)
            prefix = Path(*_static_prefix(raw.parts))
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
        """``start`` and, for a directory, everything under it (symlinks followed) resolve
        inside the data roots."""
        if start.is_symlink() and not self.read_roots.permits(start):
            raise Rejected(
                f"{where}: {start} is a link to outside the allowed data roots {self._roots()}",
                403,
            )
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
                if os.path.islink(full) and not self.read_roots.permits(full):
                    raise Rejected(  # named by the link, not by where it points
                        f"{where}: {full} is a link to outside the allowed data roots "
                        f"{self._roots()}",
                        403,
                    )

    # ------------------------------------------------------------------------ tracking

    def _check_tracking(self, uri: str | None) -> None:
        if uri is None or (self.mlflow_uri is not None and _same_uri(uri, self.mlflow_uri)):
            return
        where = "tracking.mlflow_uri"
        if self.mlflow_uri is None:
            raise Rejected(
                f"{where}: this service keeps each job's MLflow runs in its job directory; "
                "leave mlflow_uri out of the spec",
                403,
            )
        raise Rejected(
            f"{where}: this service tracks to its own MLflow server only ({self.mlflow_uri}); "
            "leave mlflow_uri out of the spec or name that server",
            403,
        )

    # ------------------------------------------------------------------ the job process

    def to_env(self) -> dict[str, str]:
        """The environment variables that hand this policy to a job process."""
        data = {
            "data_roots": [str(p) for p in self.data_roots],
            "private": [str(p) for p in self.private],
            "cache_dir": str(self.cache_dir),
            "mlflow_uri": self.mlflow_uri,
            "allow_code_hooks": self.allow_code_hooks,
            "quotas": self.quotas.to_dict(),
        }
        return {POLICY_ENV: json.dumps(data), READ_ROOTS_ENV: self.read_roots.to_env()}

    @classmethod
    def from_env(cls) -> JobPolicy | None:
        """The policy the service gave this process; None outside the service."""
        text = os.environ.get(POLICY_ENV)
        if not text:
            return None
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(
                data_roots=tuple(Path(p) for p in data["data_roots"]),
                private=tuple(Path(p) for p in data["private"]),
                cache_dir=Path(data["cache_dir"]),
                mlflow_uri=data.get("mlflow_uri"),
                allow_code_hooks=bool(data.get("allow_code_hooks", False)),
                quotas=Quotas.from_dict(data.get("quotas") or {}),
            )
        except (ValueError, KeyError, TypeError):
            # a malformed policy must not turn into no policy
            raise MixoptError(f"${POLICY_ENV} is malformed; refusing to run the job") from None


def _same_uri(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def _static_prefix(parts: tuple[str, ...]) -> list[str]:
    """The leading components of a glob pattern that hold no wildcard."""
    prefix: list[str] = []
    for part in parts:
        if _GLOB_CHARS.intersection(part):
            break
        prefix.append(part)
    return prefix or ["."]
