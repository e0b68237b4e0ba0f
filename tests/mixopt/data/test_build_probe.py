"""The demo probe builder: GCIDE entries parsed into a word and one plain definition, items
built deterministically with the answer where it says, corpus words excluded; the committed
task file is a valid probe task."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mixopt.data.probes import read_probe_file

DEMO = Path(__file__).resolve().parents[3] / "experiments" / "demo"


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    sys.path.insert(0, str(DEMO))  # it imports build_corpus from its folder
    spec = importlib.util.spec_from_file_location("build_probe", DEMO / "build_probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TERGITE = (
    'Tergite \\Ter"gite\\, n. (Zool.)\n   The dorsal portion of an arthromere or somite of an\n'
    "   articulate animal. See Illust. under {Coleoptera}.\n   [1913 Webster]"
)
NICOTINISM = (
    'Nicotinism \\Nic"o*tin*ism\\, n. [Nicotine + -ism.\n   More.] (Med.)\n   The morbid '
    "condition produced by the excessive use of\n   tobacco.\n   [Webster 1913 Suppl.]"
)


def test_an_entry_gives_its_word_and_plain_definition(builder: ModuleType) -> None:
    assert builder.headword(TERGITE) == "Tergite"
    assert builder.definition(TERGITE) == (
        "The dorsal portion of an arthromere or somite of an articulate animal. ..."  # 12 words
    )
    assert builder.headword(NICOTINISM) == "Nicotinism"  # a two-line etymology is skipped
    assert builder.definition(NICOTINISM) == (
        "The morbid condition produced by the excessive use of tobacco."
    )
    senses = 'Augean \\Au*ge"an\\, a.\n   1. Of Augeus, king of Elis.\n\n   2. Hence: filthy.'
    assert builder.definition(senses) is None
    see = 'Setewale \\Set"e*wale\\, n.\n   See {Cetewale}. [Obs.]\n   [1913 Webster]'
    assert builder.definition(see) is None
    assert builder.headword("00-database-info\n") is None


def test_corpus_words_are_excluded_and_items_are_deterministic(builder: ModuleType) -> None:
    entries = [TERGITE, NICOTINISM]
    assert [w for w, _ in builder.candidates(entries, {"tergite"})] == ["Nicotinism"]
    pool = [(f"w{i}", f"definition number {i} of many words here.") for i in range(20)]
    items = builder.build_items(pool, 5)
    assert items == builder.build_items(pool, 5)
    for item in items:
        word = item["context"].rstrip(":")
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        assert item["choices"][item["answer"]] == " " + dict(pool)[word]
    with pytest.raises(ValueError, match="usable entries"):
        builder.build_items(pool[:3], 5)


def test_the_committed_demo_task_is_a_valid_probe() -> None:
    path = DEMO / "probes" / "define.jsonl"
    items = read_probe_file(path)
    assert len(items) == 200 and path.stat().st_size < 200_000
    assert all(len(item.choices) == 4 for item in items)
    answers = [json.loads(line)["answer"] for line in path.read_text().splitlines()]
    assert set(answers) == {0, 1, 2, 3}
