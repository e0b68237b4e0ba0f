"""The documentation: built by mkdocs with warnings as errors, its generated pages complete (every
spec field, strategy, predictor and export format), and its examples valid."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from mixopt.export import FORMATS
from mixopt.predictors import available_predictors
from mixopt.proposers import STRATEGIES
from mixopt.spec import JobSpec, parse_spec
from tests.processes import REPO


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", REPO / "scripts" / "mkdocs_hooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(hooks) -> dict[str, str]:
    return hooks.generated_pages()


def test_mkdocs_builds_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in ("reference/spec", "strategies/bo", "predictors/gp", "bring-your-own-data"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_spec_reference_lists_every_field_of_the_schema(pages):
    text = pages["reference/spec.md"]
    schema = JobSpec.model_json_schema()
    models = {"top-level": schema} | {
        name.lower(): d for name, d in schema["$defs"].items() if "properties" in d
    }
    for anchor, model in models.items():
        section = text.split(f"{{#{anchor}}}", 1)[1].split("\n## ", 1)[0]
        for field, prop in model["properties"].items():
            assert f"| `{field}` |" in section, (anchor, field)
            if "default" in prop and prop["default"] is not None:
                row = next(r for r in section.splitlines() if r.startswith(f"| `{field}` |"))
                assert str(prop["default"]).lower().strip('"')[:10] in row.lower(), row


def test_a_page_per_strategy_predictor_and_export_format(pages):
    assert {f"strategies/{s}.md" for s in STRATEGIES} <= set(pages)
    assert {f"predictors/{p}.md" for p in available_predictors()} <= set(pages)
    for name in FORMATS:
        assert f"| `{name}` |" in pages["reference/exports.md"]
    assert "## When to use it" in pages["strategies/mfbo.md"]
    assert "| `alpha` |" in pages["predictors/quadratic.md"]  # read from its __init__
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = set(re.findall(r"[\w/.-]+\.md", str(nav)))
    assert {p for p in pages if p.startswith(("strategies/", "predictors/"))} <= listed


def test_the_catalog_must_match_the_registries(hooks):
    with pytest.raises(
        ValueError, match=r"no entry for \['new'\]; entries for unregistered \['old'\]"
    ):
        hooks._same_names("strategies", {"bo": "", "new": ""}, {"bo": {}, "old": {}})


def test_bring_your_own_data_spec_is_valid(tmp_path):
    guide = (REPO / "docs" / "bring-your-own-data.md").read_text()
    block = re.search(r"## 2\. A spec\n\n```yaml\n(.*?)```", guide, re.S)
    assert block is not None
    spec = parse_spec(yaml.safe_load(block.group(1)), base_dir=tmp_path)
    assert [d.name for d in spec.domains] == ["web", "code", "math"]
    assert spec.search.strategy == "bo" and spec.target.tokens == 2e11


def test_bring_your_own_data_eval_sets_are_valid(tmp_path):
    guide = (REPO / "docs" / "bring-your-own-data.md").read_text()
    base = re.search(r"## 2\. A spec\n\n```yaml\n(.*?)```", guide, re.S)
    evals = re.search(r"### What to optimise: evaluation sets\n.*?```yaml\n(.*?)```", guide, re.S)
    assert base is not None and evals is not None
    data = {**yaml.safe_load(base.group(1)), **yaml.safe_load(evals.group(1))}
    data["search"]["strategy"] = "pareto"
    spec = parse_spec(data, base_dir=tmp_path)
    assert spec.eval_names == ["support_chats", "legal_ood"]
    assert spec.objective_weights() == {"val_loss/support_chats": 1.0}


def test_readme_first_block_is_the_set_up_run_and_test_commands():
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first is not None
    lines = first.group(1).strip().splitlines()
    assert lines == [
        "scripts/setup.sh --demo-corpus && .venv/bin/mixopt run experiments/demo/search.yaml",
        "scripts/test.sh",
    ]
    for script in ("scripts/setup.sh", "scripts/test.sh", ".ci/run", "scripts/check-floors.sh"):
        path = REPO / script
        assert path.is_file() and path.stat().st_mode & 0o111, script


def test_changelog_and_license_ship():
    assert "Apache License" in (REPO / "LICENSE").read_text()
    assert "Version 2.0, January 2004" in (REPO / "LICENSE").read_text()
    assert (REPO / "mixopt" / "py.typed").is_file()
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()


def test_docs_name_no_path_of_this_machine(pages):
    for name, text in pages.items():
        assert str(Path(REPO)) not in text, name
