"""A study on disk: its JSON file, and ``StudyFile`` for workers that share one.

``save`` writes atomically through :func:`mixopt.atomic.replace_with` (a crash never leaves half
a file; a study file that is a symbolic link is written through). Several workers (processes,
machines on one shared file system with working ``flock``) update one study safely with

    with StudyFile("s.json") as study:      # waits for the lock, loads
        suggestion = study.ask(1)[0]         # ... saved atomically on leaving the block
    ... train ...
    with StudyFile("s.json") as study:
        study.tell(suggestion.mixture_id, {"val_loss": loss})

The lock (the kernel's ``flock`` on ``.NAME.lock`` beside the file, so a killed worker leaves
no stale lock) is held from load to save: no worker's result overwrites another's. A block
that raises saves nothing. Hold the lock for bookkeeping only, never while training.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mixopt.atomic import replace_with
from mixopt.errors import MixoptError
from mixopt.study.records import FORMAT_VERSION, Suggestion, check_version

if TYPE_CHECKING:
    from mixopt.study.core import Study

LOCK_WAIT_S = 120.0  # how long a worker waits for another to release a study file


class StudyLocked(MixoptError):
    """Another worker held the study file's lock for longer than the wait allowed."""


def to_dict(study: Study) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "name": study.name,
        "domains": study.domains,
        "objective": study.objective,
        "direction": study.direction,
        "strategy": study.strategy,
        "bounds": study.bounds,
        "fixed": study.fixed,
        "natural": study.natural,
        "initial": study.initial,
        "seed": study.seed,
        "target": None if study.target is None else vars(study.target),
        "law": study.law,
        "asks": study._asks,
        "queue": study.queue,
        "suggestions": [s.to_dict() for s in study.suggestions.values()],
    }


def from_dict(data: Mapping[str, Any]) -> Study:
    from mixopt.study.core import DEFAULT_LAW, Study

    version = check_version(data)
    study = Study(
        data["domains"],
        objective=data["objective"],
        direction=data["direction"],
        strategy=data["strategy"],
        bounds={d: (b[0], b[1]) for d, b in data["bounds"].items()},
        fixed=data["fixed"],
        natural=data["natural"],
        initial=data["initial"],
        seed=data["seed"],
        name=data["name"],
        target=data.get("target"),
        law=data.get("law", DEFAULT_LAW),
    )
    study._asks = int(data["asks"])
    for weights in data.get("queue", []):
        study.enqueue(weights)
    for item in data["suggestions"]:
        suggestion = Suggestion.from_dict(item, version)
        study.suggestions[suggestion.mixture_id] = suggestion
    return study


def save(study: Study, path: str | Path) -> None:
    """Write the study as JSON, atomically."""
    text = json.dumps(to_dict(study), indent=1)

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    replace_with(path, write, through=text.encode())


def load(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise MixoptError(f"{path}: study file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MixoptError(f"{path}: not a study file: {error}") from None
    try:
        return from_dict(data)
    except (KeyError, TypeError, AttributeError) as error:
        raise MixoptError(f"{path}: malformed study file ({error})") from None


class StudyFile:
    """``with StudyFile(path) as study:`` lock the study file, load it, hand it over, and save it
    atomically when the block ends without an error (only if it changed).

    ``create``: makes the study when the file does not exist yet (then ``created`` is True);
    without it, a missing file is an error. ``wait_s``: how long to wait for the lock."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: Callable[[], Study] | None = None,
        wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.path = Path(path)
        self.create = create
        self.wait_s = wait_s
        self.created = False
        self._fd: int | None = None
        self._study: Study | None = None
        self._before: dict[str, Any] | None = None

    @property
    def lock_path(self) -> Path:
        target = self.path.resolve() if self.path.is_symlink() else self.path
        return target.with_name(f".{target.name}.lock")

    def __enter__(self) -> Study:
        self._lock()
        try:
            if self.create is not None and not self.path.exists():
                self._study, self.created = self.create(), True
            else:
                self._study = load(self.path)
                self._before = copy.deepcopy(to_dict(self._study))
        except BaseException:
            self._unlock()
            raise
        return self._study

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            changed = self.created or (
                self._study is not None and to_dict(self._study) != self._before
            )
            if kind is None and self._study is not None and changed:
                save(self._study, self.path)
        finally:
            self._unlock()

    def _lock(self) -> None:
        import fcntl

        lock = self.lock_path
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StudyLocked(
                    f"{self.path}: locked by {owner} for more than {self.wait_s:g} s; a worker "
                    "holds the study (it should hold it only to ask or tell)"
                )
            time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}\n".encode(), 0)
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
