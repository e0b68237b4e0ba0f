"""Probe task files: read and check them, and tokenize each into a small cached artifact.

A probe task file is JSONL, one multiple-choice / cloze item a line::

    {"context": "Acanthine:", "choices": [" Of the plant acanthus.", " A worm."], "answer": 0}

``question`` is accepted for ``context``. :func:`read_probe_file` checks every line and raises a
:class:`~mixopt.errors.DataError` naming the file and line (bad JSON, no context, fewer than two
choices, a choice that is not a non-empty string, a missing or non-integer answer, an answer that
is not a choice index, an empty file). The spec loader runs it when a spec is loaded, the data
stage again when it reads the file.

:func:`prepare_probe` tokenizes a task with the job's tokenizer the way the lm-evaluation-harness
builds its requests: whitespace ending the context moves to the start of each choice, the context
starts with the end-of-text token (every training document follows one, so the model sees the
context as a document's start), and each choice keeps its text's UTF-8 byte length (for the
per-byte score). Past ``max_items`` items, the ones with the smallest content hash are kept (a
deterministic choice, in file order). The result (``proxies.probe_tasks``, JSON) is cached under
``<cache>/probes/`` by the file's content, the tokenizer and the cap, so a changed file
re-tokenizes and an unchanged one is reused. Under the service (``$MIXOPT_READ_ROOTS``) a file
outside the data roots is refused at read time, like a domain's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.manifest import ProbeArtifact
    from mixopt.data.tokenizer import TokenizerInfo

_CACHE_VERSION = "probe-v1"


@dataclass(frozen=True)
class ProbeText:
    """One item as written: its context, choices, answer index and line number."""

    context: str
    choices: tuple[str, ...]
    answer: int
    line: int
    digest: str  # of the item's content (which items a cap keeps)


def read_probe_file(path: str | Path) -> list[ProbeText]:
    """Every item of a probe task file, checked (see the module docstring)."""
    path = Path(path).expanduser()
    _check_read_root(path)
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise DataError(f"{path}: a probe task is one JSONL file, not a directory") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    items = [
        _item(path, number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not items:
        raise DataError(f"{path}: no items (a probe task needs at least one JSONL line)")
    return items


def _item(path: Path, number: int, line: str) -> ProbeText:
    where = f"{path}:{number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: an item must be a JSON object, got {type(data).__name__}")
    if "context" in data and "question" in data:
        raise DataError(f"{where}: give 'context' or its alias 'question', not both")
    context = data.get("context", data.get("question"))
    if not isinstance(context, str):
        raise DataError(f"{where}: 'context' (or 'question') must be a string, got {context!r}")
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        count = len(choices) if isinstance(choices, list) else "no list of"
        raise DataError(f"{where}: 'choices' must list at least 2 choices, got {count}")
    for j, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice:
            raise DataError(f"{where}: choice {j} must be a non-empty string, got {choice!r}")
    if "answer" not in data:
        raise DataError(f"{where}: missing 'answer' (the index of the correct choice)")
    answer = data["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise DataError(f"{where}: 'answer' must be an integer choice index, got {answer!r}")
    if not 0 <= answer < len(choices):
        raise DataError(
            f"{where}: answer {answer} is out of range for {len(choices)} choices "
            f"(0..{len(choices) - 1})"
        )
    content = json.dumps([context, choices, answer], ensure_ascii=False)
    digest = hashlib.sha256(content.encode()).hexdigest()
    return ProbeText(context, tuple(choices), answer, number, digest)


def _check_read_root(path: Path) -> None:
    from mixopt.data.sources import ReadRoots

    roots = ReadRoots.from_env()
    if roots is not None and not roots.permits(path):
        raise DataError(
            f"{path}: resolves outside the service's data roots (a symbolic link?); it is not read"
        )


def select_items(items: list[ProbeText], max_items: int) -> list[ProbeText]:
    """All items if they fit, else the ``max_items`` with the smallest content hash, in file
    order (deterministic, and independent of the order of the lines)."""
    if len(items) <= max_items:
        return items
    keep = set(sorted(range(len(items)), key=lambda i: (items[i].digest, i))[:max_items])
    return [item for i, item in enumerate(items) if i in keep]


def split_whitespace(context: str, choice: str) -> tuple[str, str]:
    """Whitespace ending the context moves to the start of the choice (the harness's rule)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + choice


def prepare_probe(
    name: str,
    path: str | Path,
    tokenizer: TokenizerInfo,
    cache_dir: Path,
    *,
    max_items: int,
    log: Callable[[str], None] = print,
) -> ProbeArtifact:
    """Tokenize the task in ``path`` (reusing the cache) and describe the artifact."""
    from mixopt.atomic import write_atomic
    from mixopt.data.hashing import file_digest
    from mixopt.data.manifest import ProbeArtifact

    source = Path(path).expanduser().resolve()
    items = read_probe_file(source)  # checks the read roots first
    content = file_digest(source).hex()
    key_parts: dict[str, Any] = {
        "version": _CACHE_VERSION,
        "name": name,
        "content": content,
        "tokenizer": tokenizer.hash,
        "eot_id": tokenizer.eot_id,
        "max_items": max_items,
    }
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()
    target = cache_dir / "probes" / f"{name}-{key[:16]}.json"
    chosen = select_items(items, max_items)
    if target.is_file():
        log(f"data: probe {name}: reused {len(chosen)} items ({target.name})")
    else:
        task = _tokenize(name, chosen, tokenizer)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(task.to_dict(), separators=(",", ":")))
        capped = f" of {len(items)}" if len(chosen) < len(items) else ""
        log(f"data: probe {name}: tokenized {len(chosen)}{capped} items, content {content[:12]}")
    return ProbeArtifact(
        name=name,
        path=str(target),
        content_hash=content,
        items=len(chosen),
        source=str(source),
    )


def _tokenize(name: str, items: list[ProbeText], tokenizer: TokenizerInfo) -> Any:
    from proxies.probe_tasks import ProbeItem, ProbeTask

    encoder = tokenizer.load()

    def encode(texts: list[str]) -> list[list[int]]:
        encodings = encoder.encode_batch(texts, add_special_tokens=False)
        return [list(e.ids) for e in encodings]

    out = []
    for item in items:
        pairs = [split_whitespace(item.context, choice) for choice in item.choices]
        context = pairs[0][0]
        continuations = [p[1] for p in pairs]
        context_ids, *choice_ids = encode([context, *continuations])
        for j, ids in enumerate(choice_ids):
            if not ids:
                raise DataError(
                    f"probe {name!r}: line {item.line}: choice {j} encodes to no tokens"
                )
        out.append(
            ProbeItem(
                context=(tokenizer.eot_id, *context_ids),
                choices=tuple(tuple(ids) for ids in choice_ids),
                choice_bytes=tuple(len(c.encode()) for c in continuations),
                answer=item.answer,
            )
        )
    return ProbeTask(name, tuple(out))
