"""The demo corpus builder, run on whatever sources this machine has (with a small cap)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_demo_builder


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    return load_demo_builder()


@pytest.fixture(scope="module")
def built(
    builder: ModuleType, tmp_path_factory: pytest.TempPathFactory, demo_sources: None
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("corpus")
    return {"out": out, "results": builder.build_corpus(out, 0.05)}


@pytest.mark.parametrize("domain", ["code", "docs", "bible", "dictionary", "computing", "fortunes"])
def test_domain_is_valid_jsonl(built: dict[str, Any], domain: str) -> None:
    result = built["results"][domain]
    assert "skipped" not in result, result["skipped"]
    path = Path(result["path"])
    assert path == built["out"] / f"{domain}.jsonl"
    assert 0 < result["bytes"] == path.stat().st_size <= 50_000
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == result["documents"] > 0
    texts = [json.loads(line)["text"] for line in lines]
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert not list(built["out"].glob(".*tmp*"))


def test_rebuild_is_identical(built: dict[str, Any], builder: ModuleType) -> None:
    code = Path(built["results"]["code"]["path"])
    before = code.read_bytes()
    assert builder.build_domain("code", built["out"], 0.05)["bytes"] == len(before)
    assert code.read_bytes() == before


def test_bible_chapters(builder: ModuleType) -> None:
    lines = ["Ge1:1 In the beginning.", "Ge1:2 And the earth.", "1Sm2:1 And Hannah prayed."]
    assert list(builder._chapters(lines)) == [
        "Ge 1\n1 In the beginning.\n2 And the earth.",
        "1Sm 2\n1 And Hannah prayed.",
    ]


def test_select_is_seeded_and_keeps_order(builder: ModuleType) -> None:
    records = [f"record {i:03d}" for i in range(100)]
    chosen = builder.select(records, 200)
    assert chosen == builder.select(records, 200) == sorted(chosen)
    assert sum(len(r) + 1 for r in chosen) <= 200 and chosen != records[: len(chosen)]
    assert builder.select(records[:3], 10_000) == records[:3]


def test_too_few_domains_fail(
    builder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    def missing() -> Iterator[str]:
        raise builder.SourceMissing("/nowhere/data not found")
        yield ""

    monkeypatch.setattr(builder, "SOURCES", {"code": builder.code_documents, "gone": missing})
    assert builder.main(["--out", str(tmp_path), "--max-mb-per-domain", "0.01"]) == 1
    output = capsys.readouterr()
    assert "gone        skipped: /nowhere/data not found" in output.out
    assert "need at least 2" in output.err


def test_without_debian_packages_every_domain_falls_back_and_says_so(
    builder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """No apt, no root, another OS: the six domains are still built, from text every Python
    installation has or this repository ships, and the output names each stand-in."""
    monkeypatch.setattr(builder, "DOCS_SOURCES", tmp_path / "no-python-doc")
    monkeypatch.setattr(builder, "DICTD", tmp_path / "no-dictd")
    monkeypatch.setattr(builder, "FORTUNES", tmp_path / "no-fortunes")
    monkeypatch.setattr(builder.shutil, "which", lambda name: None)  # no `bible` command
    out = tmp_path / "corpus"
    assert builder.main(["--out", str(out), "--max-mb-per-domain", "0.05"]) == 0
    printed = capsys.readouterr().out
    results = builder.build_corpus(out, 0.05)
    assert set(results) == {"code", "docs", "bible", "dictionary", "computing", "fortunes"}
    assert "fallback" not in results["code"]  # the standard library is always there
    for name in ("docs", "bible", "dictionary", "computing", "fortunes"):
        result = results[name]
        assert "skipped" not in result and result["documents"] > 0
        what = builder.FALLBACKS[name][0]
        assert result["fallback"].startswith(what)
        assert f"built from {what}" in printed
        texts = [json.loads(line)["text"] for line in Path(result["path"]).read_text().splitlines()]
        assert all(t.strip() for t in texts)
    assert (
        "the bible command" in results["bible"]["fallback"]
        or "bible-kjv" in results["bible"]["fallback"]
    )
    assert "5 of them (docs, bible, dictionary, computing, fortunes) from stand-in text" in printed
    bible = [
        json.loads(line)["text"] for line in Path(results["bible"]["path"]).read_text().splitlines()
    ]
    assert len(bible) == 6 and any("In the beginning God created" in t for t in bible)


def test_packages_without_descriptions_still_give_computing_text(
    builder: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment whose packages carry no long descriptions: the stand-in for the computing
    domain is the standard library's long function and class docstrings."""
    monkeypatch.setattr(builder, "_installed_distributions", lambda: [])
    documents = list(itertools.islice(builder.package_description_documents(), 50))
    assert len(documents) == 50 and all(len(d) >= 200 for d in documents)
