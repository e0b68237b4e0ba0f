"""Build the demo's downstream probe: which definition belongs to a dictionary word?

    python experiments/demo/build_probe.py [--corpus CORPUS] [--out OUT] [--items 200]

(defaults: ``experiments/demo/corpus/dictionary.jsonl``, ``experiments/demo/probes/define.jsonl``)

Each item is a GCIDE headword and four candidate definitions (a probe task file for the spec's
``probes`` section, ``mixopt.data.probes``)::

    {"context": "Tergite:", "choices": [" The dorsal portion of an arthromere or somite of an
     articulate animal.", ...], "answer": 2}

The true definition and three definitions of other words (each its first 12 words, GCIDE markup
removed), in a seeded random order. Entries come from the dictd GCIDE database (Debian
``dict-gcide``, what ``build_corpus.py`` reads) and are never in the demo's training corpus: every
headword that appears anywhere in the demo's ``dictionary`` domain file (``--corpus``, built by
``build_corpus.py``: a 3 MB seeded sample of GCIDE, training and validation split alike) is
excluded, so the proxies never saw the entry (though they may have seen its words elsewhere).
Only plain entries are used: a single-word headword of letters, one sense whose definition has
at least 5 words ending in a full stop, no cross-reference-only definitions ("See {...}"), no
unrendered Greek (``?``) or pronunciation markup left and no mention of the headword itself.
The output is deterministic (seed 0) for a given GCIDE and corpus file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_corpus import SourceMissing, _dictd_entries, write_lines  # noqa: E402

DEFAULT_CORPUS = HERE / "corpus" / "dictionary.jsonl"
DEFAULT_OUT = HERE / "probes" / "define.jsonl"
SEED = 0
WORDS = 12  # words of each definition kept
N_CHOICES = 4

_HEADER = re.compile(r"^([A-Za-z][A-Za-z-]*[A-Za-z]) \\")
_LABEL = re.compile(r"^\((?:[A-Z][A-Za-z. &]*)\)\s*")
_SOURCE = re.compile(r"^\[(?:\d{4} Webster|Webster|WordNet|PJC|Century|.*Suppl)")


def headword(entry: str) -> str | None:
    """The entry's headword (``Tergite \\Ter"gite\\, n. …`` -> ``Tergite``), None when the entry
    does not start like a plain one."""
    match = _HEADER.match(entry)
    return match.group(1) if match else None


def definition(entry: str) -> str | None:
    """The entry's definition when it has exactly one plain sense, else None."""
    lines = [line.strip() for line in entry.split("\n")]
    if any(line.startswith(("2.", "Syn:")) for line in lines):
        return None  # several senses (or a WordNet entry): no single definition to test
    depth, body = 0, []
    for i, line in enumerate(lines):
        if i == 0 or depth > 0:  # the header and its etymology brackets, however many lines
            depth = max(0, depth + line.count("[") - line.count("]"))
            continue
        if not line or _SOURCE.match(line):
            break
        body.append(line)
    text = " ".join(body)
    text = _LABEL.sub("", re.sub(r"^1\.\s*", "", text))
    text = re.sub(r"[{}]", "", re.sub(r"\s*--[A-Z][\w. ]*\.?$", "", text)).strip()
    if not text.endswith(".") or any(c in text for c in '?[\\`"'):
        return None  # cut off, unrendered Greek, markup or pronunciations left
    close, open_ = text.find(")"), text.find("(")
    if close != -1 and not 0 <= open_ < close:
        return None  # the end of a label the header split
    if text.startswith(("See ", "Same as", "Alt.")):
        return None
    words = text.split()
    if len(words) < 5:
        return None
    short = " ".join(words[:WORDS])
    return short if len(words) <= WORDS else short.rstrip(",;:") + " ..."


def corpus_headwords(path: Path) -> set[str]:
    """Every headword appearing in the demo's dictionary domain (lower case)."""
    words: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            for paragraph in json.loads(line)["text"].split("\n\n"):
                word = headword(paragraph.strip())
                if word:
                    words.add(word.lower())
    return words


def candidates(entries: Iterable[str], exclude: set[str]) -> Iterator[tuple[str, str]]:
    """(headword, definition) of each plain entry not in ``exclude``, first sense per word."""
    seen = set(exclude)
    for entry in entries:
        word = headword(entry)
        if word is None or word.lower() in seen:
            continue
        seen.add(word.lower())
        text = definition(entry)
        if text is not None and word.lower() not in text.lower():
            yield word, text


def build_items(pool: list[tuple[str, str]], n_items: int, seed: int = SEED) -> list[dict]:
    """``n_items`` items: a word, its definition and N_CHOICES - 1 others', shuffled."""
    if len(pool) < max(n_items, N_CHOICES):
        raise ValueError(f"only {len(pool)} usable entries for {n_items} items")
    rng = random.Random(seed)
    items = []
    for index in rng.sample(range(len(pool)), n_items):
        word, true = pool[index]
        others: list[str] = []
        while len(others) < N_CHOICES - 1:
            _, text = pool[rng.randrange(len(pool))]
            if text != true and text not in others:
                others.append(text)
        choices = [true, *others]
        rng.shuffle(choices)
        items.append(
            {
                "context": f"{word}:",
                "choices": [f" {c}" for c in choices],
                "answer": choices.index(true),
            }
        )
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="dictionary domain")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="probe task file")
    parser.add_argument("--items", type=int, default=200, help="items to write")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(
            f"{args.corpus} not found: build the demo corpus first (build_corpus.py)",
            file=sys.stderr,
        )
        return 1
    try:
        entries = list(_dictd_entries("gcide", "dict-gcide"))
    except SourceMissing as missing:
        print(f"GCIDE is needed: {missing}", file=sys.stderr)
        return 1
    exclude = corpus_headwords(args.corpus)
    pool = list(candidates(entries, exclude))
    items = build_items(pool, args.items)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_lines(args.out, [json.dumps(item, ensure_ascii=False) for item in items])
    print(
        f"{len(items)} items from {len(pool)} usable GCIDE entries ({len(exclude)} corpus "
        f"headwords excluded) -> {args.out} ({args.out.stat().st_size / 1e3:.1f} kB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
