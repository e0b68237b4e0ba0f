"""Probe tasks in the data stage: tokenized with the job's tokenizer the harness way, cached by
content (a changed file re-tokenizes), capped deterministically, recorded in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from mixopt.data import DataManifest, prepare_data
from mixopt.data.probes import read_probe_file, select_items, split_whitespace
from mixopt.errors import DataError
from proxies.probe_tasks import load_probe_task

from .conftest import CORPUS, LogCollector, MakeSpec

DOMAINS = [
    {"name": "code", "paths": [str(CORPUS / "code")]},
    {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
]
ITEMS = [
    {"context": "In the beginning ", "choices": ["God created", "the code ran"], "answer": 0},
    {"question": "def main():", "choices": [" return 0", " amen"], "answer": 1},
    {"context": "", "choices": ["And", "import", "Selah"], "answer": 2},
]


def write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_a_task_is_tokenized_the_harness_way_and_recorded(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    task_file = write(tmp_path / "task.jsonl", ITEMS)
    spec = make_spec(DOMAINS, probes=[{"name": "mc", "path": str(task_file)}])
    logs = LogCollector()
    manifest = prepare_data(spec, log=logs)
    (artifact,) = manifest.probes.values()
    assert artifact.name == "mc" and artifact.items == 3 and artifact.source == str(task_file)
    assert "probe mc: tokenized 3 items" in logs.text()
    (probe_file,) = manifest.probe_files()
    task = probe_file.load()
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    first = task.items[0]
    assert first.context[0] == manifest.eot_id  # every context starts like a document
    assert tokenizer.decode(list(first.context[1:])) == "In the beginning"
    # the context's trailing space moved to each choice, and the bytes count it
    assert [tokenizer.decode(list(c)) for c in first.choices] == [" God created", " the code ran"]
    assert first.choice_bytes == (12, 13)
    assert task.items[1].answer == 1 and tokenizer.decode(list(task.items[1].choices[1])) == " amen"
    assert task.items[2].context == (manifest.eot_id,)  # an empty context: end-of-text only
    assert task.max_token_id() < manifest.vocab_size
    # the manifest keeps it and the data hash covers it
    again = DataManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest
    without = prepare_data(make_spec(DOMAINS), log=LogCollector())
    assert without.probes == {} and without.data_hash != manifest.data_hash
    old = without.to_dict()
    del old["probes"]  # a manifest written before probes existed
    assert DataManifest.from_dict(old).data_hash == without.data_hash


def test_an_unchanged_task_is_reused_and_a_changed_one_retokenized(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    task_file = write(tmp_path / "task.jsonl", ITEMS)
    spec = make_spec(DOMAINS, probes=[{"name": "mc", "path": str(task_file)}])
    first = prepare_data(spec, log=LogCollector())
    logs = LogCollector()
    second = prepare_data(spec, log=logs)
    assert second == first and "probe mc: reused 3 items" in logs.text()
    write(task_file, ITEMS[:2])
    third = prepare_data(spec, log=LogCollector())
    assert third.probes["mc"].path != first.probes["mc"].path
    assert third.probes["mc"].items == 2 and third.data_hash != first.data_hash
    assert len(load_probe_task(third.probes["mc"].path).items) == 2
    assert len(load_probe_task(first.probes["mc"].path).items) == 3  # the old one is intact


def test_a_cap_keeps_the_same_items_whatever_their_order(tmp_path: Path) -> None:
    items = [{"context": f"c{i}", "choices": ["a", f"b{i}"], "answer": i % 2} for i in range(50)]
    forward = read_probe_file(write(tmp_path / "f.jsonl", items))
    backward = read_probe_file(write(tmp_path / "b.jsonl", items[::-1]))
    kept = select_items(forward, 10)
    assert len(kept) == 10
    assert [k.line for k in kept] == sorted(k.line for k in kept)  # file order
    assert {k.context for k in kept} == {k.context for k in select_items(backward, 10)}
    assert select_items(forward, 50) == forward


def test_the_cap_applies_in_the_data_stage(make_spec: MakeSpec, tmp_path: Path) -> None:
    items = [{"context": f"c{i}", "choices": ["a", "b"], "answer": i % 2} for i in range(30)]
    task_file = write(tmp_path / "task.jsonl", items)
    spec = make_spec(DOMAINS, probes=[{"name": "mc", "path": str(task_file), "max_items": 7}])
    manifest = prepare_data(spec, log=LogCollector())
    assert manifest.probes["mc"].items == 7
    assert len(load_probe_task(manifest.probes["mc"].path).items) == 7


def test_a_bad_task_file_fails_before_tokenizing(make_spec: MakeSpec, tmp_path: Path) -> None:
    task_file = write(tmp_path / "task.jsonl", [*ITEMS, {"context": "x", "choices": ["a"]}])
    spec = make_spec(DOMAINS, probes=[{"name": "mc", "path": str(task_file)}])
    logs = LogCollector()
    with pytest.raises(DataError, match=r"task\.jsonl:4: 'choices' must list at least 2"):
        prepare_data(spec, log=logs)
    assert "tokenizer" not in logs.text().lower()


def test_whitespace_moves_from_the_context_to_the_choice() -> None:
    assert split_whitespace("Q: why?  ", "because") == ("Q: why?", "  because")
    assert split_whitespace("word:", " a thing") == ("word:", " a thing")
