"""Shared fixtures: the committed test assets and job specs over the tiny real corpus."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

from mixopt.spec import JobSpec
from tests.processes import apt_install

# Property tests explore new examples on every local run; CI (HYPOTHESIS_PROFILE=ci, set by
# .ci/run) replays a fixed set so a landing never hinges on the draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ASSETS = Path(__file__).parent / "assets"
CORPUS = ASSETS / "corpus"

MakeSpec = Callable[..., JobSpec]

# a quick search over the asset corpus: 8 initial trials, 2 rounds of 3, a fast strategy (the
# loop's logic does not depend on it; tests of a strategy set their own)
QUICK_SEARCH: dict[str, Any] = {
    "initial_trials": 8,
    "rounds": 2,
    "trials_per_round": 3,
    "candidates": 2000,
    "top_k": 40,
    "strategy": "regmix",
    "predictor": "linear",
}


def corpus_domains() -> list[dict[str, Any]]:
    """The three asset domains: JSONL code, text-file bible (a glob), Parquet dictionary."""
    return [
        {"name": "code", "paths": [str(CORPUS / "code")]},
        {"name": "bible", "paths": [str(CORPUS / "bible" / "*.txt")]},
        {"name": "dictionary", "paths": [str(CORPUS / "dictionary")]},
    ]


@pytest.fixture
def assets() -> Path:
    return ASSETS


@pytest.fixture
def regmix_runs() -> Path:
    return ASSETS / "regmix" / "runs_96.csv"


@pytest.fixture
def make_spec(tmp_path: Path) -> MakeSpec:
    """A JobSpec over the given domains (default: the asset corpus), cached under tmp_path.

    Sections given as keyword arguments replace the defaults (``data`` and ``tokenizer`` are
    merged into small-corpus defaults: a 300-token BPE trained on 20 kB per domain).
    """

    def make(
        domains: list[dict[str, Any]] | None = None,
        cache_dir: Path | None = None,
        **sections: Any,
    ) -> JobSpec:
        data = {"cache_dir": str(cache_dir or tmp_path / "cache"), **sections.pop("data", {})}
        tokenizer = {"vocab_size": 300, "sample_bytes_per_domain": 20_000}
        tokenizer.update(sections.pop("tokenizer", {}))
        return JobSpec.model_validate(
            {
                "name": "test",
                "output_dir": str(tmp_path / "runs"),
                "domains": domains or corpus_domains(),
                "data": data,
                "tokenizer": tokenizer,
                **sections,
            }
        )

    return make


DEMO_BUILDER = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "build_corpus.py"


def load_demo_builder() -> ModuleType:
    """experiments/demo/build_corpus.py as a module (experiments are scripts, not a package)."""
    if "build_corpus" in sys.modules:
        return sys.modules["build_corpus"]
    spec = importlib.util.spec_from_file_location("build_corpus", DEMO_BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return status.returncode == 0 and status.stdout.endswith(" installed")


@pytest.fixture(scope="session")
def demo_sources() -> None:
    """The demo corpus' Debian text packages: installed with apt when missing (a root Debian
    machine, as CI is); otherwise the test fails saying what to install, it does not skip."""
    packages = load_demo_builder().DEBIAN_PACKAGES
    if not shutil.which("dpkg-query"):
        pytest.fail(f"the demo corpus tests need Debian's packages {', '.join(packages)}")
    missing = [p for p in packages if not _installed(p)]
    if missing:
        problem = apt_install(*missing)
        missing = [p for p in missing if not _installed(p)]
        if missing:
            pytest.fail(f"install Debian's {' '.join(missing)} (apt-get install): {problem}")
