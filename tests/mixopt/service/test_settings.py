"""Tokens and settings: where tokens come from, which are refused, and who a token is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mixopt.service.auth import TokenVerifier
from mixopt.service.settings import (
    ServiceConfigError,
    ServiceSettings,
    load_tokens,
    read_tokens_file,
)

LONG = "x" * 16


def test_tokens_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MIXOPT_TOKEN", raising=False)
    monkeypatch.delenv("MIXOPT_TOKEN_FILE", raising=False)
    assert load_tokens() == {}
    monkeypatch.setenv("MIXOPT_TOKEN", "  env-token-0123456789  ")
    assert load_tokens() == {"default": "env-token-0123456789"}
    users = tmp_path / "tokens.yaml"
    users.write_text("alice: alice-token-0123456789\nbob: bob-token-0123456789\n")
    assert load_tokens(users) == {
        "alice": "alice-token-0123456789",
        "bob": "bob-token-0123456789",
        "default": "env-token-0123456789",
    }
    single = tmp_path / "token"
    single.write_text("file-token-0123456789\n")
    monkeypatch.delenv("MIXOPT_TOKEN")
    monkeypatch.setenv("MIXOPT_TOKEN_FILE", str(single))
    assert load_tokens() == {"default": "file-token-0123456789"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[a, b]", "expected a token or a mapping of user: token"),
        ("alice: [1]", "every entry must be 'user: token'"),
        ("a: [unclosed", "not a token or a YAML mapping"),
    ],
)
def test_bad_tokens_files(tmp_path, content, message):
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(ServiceConfigError, match=message.replace("[", r"\[")):
        read_tokens_file(path)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({}, "no token configured: set MIXOPT_TOKEN"),
        ({"alice": "short"}, "shorter than 16 characters"),
        ({"alice": LONG, "bob": LONG}, "users 'alice' and 'bob' share a token"),
        ({"al ice": LONG}, "user name 'al ice'"),
    ],
)
def test_unusable_tokens_refuse_to_start(tmp_path, tokens, message):
    with pytest.raises(ServiceConfigError, match=message):
        ServiceSettings(tokens=tokens, state_dir=tmp_path)


def test_settings_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = ServiceSettings(tokens={"default": LONG}, state_dir=tmp_path / "s")
    assert settings.host == "127.0.0.1"
    assert settings.data_roots == [tmp_path.resolve()]
    assert settings.url == f"sqlite:///{tmp_path.resolve() / 's' / 'service.db'}"
    assert settings.jobs_dir == tmp_path.resolve() / "s" / "jobs"
    with pytest.raises(ServiceConfigError, match="runner must be"):
        ServiceSettings(tokens={"default": LONG}, state_dir=tmp_path, runner="slurm")


def test_verifier_maps_tokens_to_users():
    verifier = TokenVerifier({"alice": "a" * 20, "bob": "b" * 20})
    assert verifier.user_of("a" * 20) == "alice"
    assert verifier.user_of("b" * 20) == "bob"
    assert verifier.user_of("a" * 19) is None
    assert verifier.user_of("") is None
    assert verifier.user_of("a" * 20 + " ") is None
    assert verifier.user_of("\udcff") is None  # lone surrogate: no crash


def test_importing_mixopt_loads_no_service_framework():
    code = (
        "import sys, mixopt, mixopt.cli.main, mixopt.service, mixopt.service.settings;"
        "mods = ('fastapi', 'uvicorn', 'sqlalchemy', 'httpx', 'starlette');"
        "print([m for m in mods if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
