"""What a deployment of the service configures, and where the tokens come from.

Defaults keep everything on one machine: bound to 127.0.0.1, jobs in SQLite under the state
directory, specs may read data under the directory the server was started in, each job tracks
to MLflow's SQLite in its own directory. A shared deployment names a database URL (e.g.
``postgresql+psycopg://user@host/mixopt``), its data roots, a tokens file mapping each user to
a token, its MLflow server (the only one jobs may track to) and its users' quotas.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mixopt.errors import MixoptError
from mixopt.service.quotas import Quotas

TOKEN_ENV = "MIXOPT_TOKEN"
TOKEN_FILE_ENV = "MIXOPT_TOKEN_FILE"
STATE_DIR_ENV = "MIXOPT_SERVICE_DIR"
DEFAULT_USER = "default"
MIN_TOKEN_LENGTH = 16
_USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$")


class ServiceConfigError(MixoptError):
    """The service's configuration is unusable (names the setting and the problem)."""


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path.home() / ".mixopt" / "service")


def default_job_command() -> tuple[str, ...]:
    """How a job process is started: this interpreter running mixopt's CLI."""
    return (sys.executable, "-m", "mixopt.cli.main")


@dataclass
class ServiceSettings:
    """Everything the service needs; built by ``mixopt serve`` or by tests."""

    tokens: dict[str, str]
    state_dir: Path = field(default_factory=default_state_dir)
    data_roots: list[Path] = field(default_factory=lambda: [Path.cwd()])
    database_url: str | None = None  # default: SQLite in the state directory
    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = 1 << 20
    max_concurrent_jobs: int = 1
    runner: str = "ray"
    auto_resume: bool = True
    max_resumes: int = 3
    poll_interval_s: float = 1.0
    cancel_grace_s: float = 20.0
    job_command: tuple[str, ...] = field(default_factory=default_job_command)
    allow_code_hooks: bool = False
    public_docs: bool = False
    mlflow_uri: str | None = None  # the MLflow server jobs track to; None: their own SQLite
    quotas: Quotas = field(default_factory=Quotas)

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ServiceConfigError(
                f"no token configured: set {TOKEN_ENV} or give a tokens file "
                f"(--token-file / {TOKEN_FILE_ENV}); every endpoint but /health needs one"
            )
        check_tokens(self.tokens)
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        self.data_roots = [Path(r).expanduser().resolve() for r in self.data_roots]
        if not self.data_roots:
            raise ServiceConfigError("at least one data root is needed")
        if self.runner not in ("ray", "local"):
            raise ServiceConfigError(f"runner must be 'ray' or 'local', got {self.runner!r}")
        if self.max_concurrent_jobs < 1:
            raise ServiceConfigError("max_concurrent_jobs must be at least 1")
        if self.max_request_bytes < 1024:
            raise ServiceConfigError("max_request_bytes must be at least 1024")
        if self.mlflow_uri is not None and not self.mlflow_uri.startswith(("http://", "https://")):
            raise ServiceConfigError(
                f"mlflow_uri must be an http(s) MLflow server, got {self.mlflow_uri!r} (without "
                "one, each job keeps its runs in its own directory)"
            )

    @property
    def jobs_dir(self) -> Path:
        """Each job's folder: ``<state>/jobs/<id>/`` (its spec, process log, and ``run/``)."""
        return self.state_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        """The data caches, one per user: ``<state>/cache/<user>/``."""
        return self.state_dir / "cache"

    def user_cache_dir(self, user: str) -> Path:
        """The cache of ``user``'s jobs (no user can read or poison another's shards)."""
        return self.cache_dir / user

    @property
    def studies_dir(self) -> Path:
        """The studies, one folder per user: ``<state>/studies/<user>/<id>.json``."""
        return self.state_dir / "studies"

    def user_studies_dir(self, user: str) -> Path:
        """``user``'s studies (a user name is letters, digits and ``_.@-``: one path part)."""
        return self.studies_dir / user

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'service.db'}"


def check_tokens(tokens: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for user, token in tokens.items():
        if not _USER_PATTERN.match(user):
            raise ServiceConfigError(f"user name {user!r}: use letters, digits and _.@- only")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
            raise ServiceConfigError(
                f"token of user {user!r} is shorter than {MIN_TOKEN_LENGTH} characters; make "
                "one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if token in seen:
            raise ServiceConfigError(f"users {seen[token]!r} and {user!r} share a token")
        seen[token] = user


def read_tokens_file(path: str | Path) -> dict[str, str]:
    """A tokens file: one token on its own (user ``default``), or a YAML mapping user → token."""
    import yaml

    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ServiceConfigError(f"{path}: cannot read tokens file: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ServiceConfigError(f"{path}: not a token or a YAML mapping: {error}") from None
    if isinstance(data, str) and data.strip():
        return {DEFAULT_USER: data.strip()}
    if isinstance(data, dict) and data:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ServiceConfigError(f"{path}: every entry must be 'user: token' (strings)")
        return {k: v.strip() for k, v in data.items()}
    raise ServiceConfigError(f"{path}: expected a token or a mapping of user: token")


def load_tokens(token_file: str | Path | None = None) -> dict[str, str]:
    """Tokens from ``token_file`` (or ``$MIXOPT_TOKEN_FILE``) and ``$MIXOPT_TOKEN``."""
    tokens: dict[str, str] = {}
    token_file = token_file or os.environ.get(TOKEN_FILE_ENV)
    if token_file:
        tokens.update(read_tokens_file(token_file))
    env_token = os.environ.get(TOKEN_ENV, "").strip()
    if env_token:
        if DEFAULT_USER in tokens and tokens[DEFAULT_USER] != env_token:
            raise ServiceConfigError(
                f"{TOKEN_ENV} and the tokens file both define user {DEFAULT_USER!r}"
            )
        tokens[DEFAULT_USER] = env_token
    return tokens
