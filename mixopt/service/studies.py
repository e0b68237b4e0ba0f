"""The API's study endpoints: mixopt's ask/tell :class:`~mixopt.study.Study` over HTTP, for
teams whose training jobs are not Python.

    POST   /studies                     create a study (name, domains, strategy, ...)
    GET    /studies                     the caller's studies, most recently changed first
    GET    /studies/{id}                summary: mixtures told, pending, failed; best observed
    DELETE /studies/{id}                delete it
    POST   /studies/{id}/ask            {"n": 2} -> [{"mixture_id", "weights", "source"}]
    POST   /studies/{id}/tell           {"mixture_id", "value" | "metrics", "params"?, "tokens"?}
    POST   /studies/{id}/fail           {"mixture_id", "reason"?}
    POST   /studies/{id}/enqueue        {"weights": {...}}: the next ask returns it first
    GET    /studies/{id}/best           the recommendation; ?observed=true: the best result
                                        told; ?params=N&tokens=D: at that target scale

A study belongs to the user who created it; another user's is a 404, like one that does not
exist. Each study is one file, ``<state>/studies/<user>/<id>.json``, with a server-generated id:
no path comes from a request. Every change holds the file's lock (:class:`StudyFile`) from load
to an atomic save, so concurrent requests (threads, server processes) lose nothing, and a request
that fails saves nothing. Errors: 404 unknown study, 409 an unknown mixture id or a study not
ready (``best`` before two results; ``fail`` after a result), 422 bad input (naming the field),
429/403/422 over the limits of :class:`~mixopt.service.quotas.Quotas`, 503 a study whose lock
stays taken.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import contextlib
import logging
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response

from mixopt.errors import MixoptError
from mixopt.service.policy import Rejected
from mixopt.service.quotas import QuotaExceeded
from mixopt.service.schemas import ErrorOut
from mixopt.service.settings import ServiceSettings
from mixopt.service.study_schemas import (
    AskIn,
    EnqueueIn,
    EnqueueOut,
    FailIn,
    FailOut,
    StudyIn,
    StudyList,
    StudyOut,
    SuggestionOut,
    TellIn,
    TellOut,
)
from mixopt.service.views import iso
from mixopt.study import Study, StudyFile
from mixopt.study.records import Best, Observed, scale_of
from mixopt.study.storage import StudyLocked

log = logging.getLogger("mixopt.service")

STUDY_ID = re.compile(r"^s[0-9a-f]{16}$")
LOCK_WAIT_S = 30.0  # a request waits this long for another to release a study
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 413, 422, 429, 503)
}
T = TypeVar("T")


def new_study_id() -> str:
    return "s" + secrets.token_hex(8)


def attempt(status: int, call: Callable[[], T]) -> T:
    """``call()``; a MixoptError it raises (naming what was wrong) becomes a refusal with
    ``status``."""
    try:
        return call()
    except MixoptError as error:
        raise Rejected(str(error), status) from None


def within(check: Callable[[], None]) -> None:
    """A quota check; over it: the quota's status (429, 403 or 422)."""
    try:
        check()
    except QuotaExceeded as error:
        raise Rejected(str(error), error.status) from None


@contextlib.contextmanager
def user_lock(folder: Path) -> Iterator[None]:
    """One user's studies locked (the kernel's ``flock``): creations count and add as one."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".studies.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def summary(study_id: str, study: Study, path: Path) -> StudyOut:
    states = Counter(s.state for s in study.suggestions.values())
    try:
        updated = iso(path.stat().st_mtime) or ""
    except OSError:  # deleted meanwhile
        updated = ""
    try:
        observed: Observed | None = study.best_observed()
    except MixoptError:
        observed = None
    return StudyOut(
        id=study_id,
        name=study.name,
        domains=study.domains,
        objective=study.objective,
        direction=study.direction,
        strategy=study.strategy,
        initial=study.initial,
        target=None if study.target is None else vars(study.target),
        mixtures=len(study.suggestions),
        told=states["done"],
        pending=states["pending"],
        failed=states["failed"],
        queued=len(study.queue),
        best_observed=observed,
        updated=updated,
    )


def study_router(settings: ServiceSettings, user_dependency: Any) -> APIRouter:
    router = APIRouter(tags=["studies"], responses=ERRORS)
    User = Annotated[str, user_dependency]
    quotas = settings.quotas

    def study_files(user: str) -> list[Path]:
        folder = settings.user_studies_dir(user)
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if STUDY_ID.match(p.stem) and p.suffix == ".json"]

    def path_of(study_id: str, user: str) -> Path:
        path = settings.user_studies_dir(user) / f"{study_id}.json"
        if not STUDY_ID.match(study_id) or not path.is_file():
            raise Rejected(f"no study {study_id!r}", 404)
        return path

    def load(study_id: str, user: str) -> tuple[Study, Path]:
        path = path_of(study_id, user)
        try:
            return Study.load(path), path
        except MixoptError:
            if not path.exists():  # deleted meanwhile
                raise Rejected(f"no study {study_id!r}", 404) from None
            raise

    @contextlib.contextmanager
    def locked(study_id: str, user: str) -> Iterator[Study]:
        """The study, locked; saved when the block ends without an error (only if changed)."""
        path = path_of(study_id, user)
        handle = StudyFile(path, wait_s=LOCK_WAIT_S)
        try:
            study = handle.__enter__()
        except StudyLocked:
            raise Rejected(f"study {study_id} is busy; try again", 503) from None
        except MixoptError:
            if not path.exists():
                raise Rejected(f"no study {study_id!r}", 404) from None
            raise
        try:
            yield study
        except BaseException as error:
            handle.__exit__(type(error), error, error.__traceback__)
            raise
        handle.__exit__(None, None, None)

    def known(study: Study, study_id: str, mixture_id: str) -> None:
        if mixture_id not in study.suggestions:
            raise Rejected(
                f"mixture_id: study {study_id} has no mixture {mixture_id!r} (ask for one)", 409
            )

    # ---------------------------------------------------------------------------- studies

    @router.post("/studies", status_code=201, response_model=StudyOut)
    def create_study(body: StudyIn, user: User) -> StudyOut:
        """Create a study; it belongs to the caller."""
        config = body.model_dump(exclude={"name", "domains", "target"})
        target = None if body.target is None else body.target.model_dump()
        study = attempt(422, lambda: Study(body.domains, name=body.name, target=target, **config))
        folder = settings.user_studies_dir(user)
        with user_lock(folder):
            within(lambda: quotas.check_new_study(len(study_files(user))))
            while True:
                study_id = new_study_id()
                handle = StudyFile(folder / f"{study_id}.json", create=lambda: study)
                with handle:
                    pass
                if handle.created:
                    break
        log.info("study %s (%s) created by %s", study_id, body.name, user)
        return summary(study_id, study, handle.path)

    @router.get("/studies", response_model=StudyList)
    def list_studies(user: User) -> StudyList:
        """The caller's studies, most recently changed first."""
        found = []
        for path in sorted(study_files(user), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                found.append(summary(path.stem, Study.load(path), path))
            except (MixoptError, OSError) as error:  # deleted or unreadable meanwhile
                log.warning("study %s of %s skipped: %s", path.stem, user, error)
        return StudyList(studies=found, total=len(found))

    @router.get("/studies/{study_id}", response_model=StudyOut)
    def get_study(study_id: str, user: User) -> StudyOut:
        """A study's summary."""
        study, path = load(study_id, user)
        return summary(study_id, study, path)

    @router.delete("/studies/{study_id}", status_code=204, response_class=Response)
    def delete_study(study_id: str, user: User) -> Response:
        """Delete a study (its results are gone)."""
        path = path_of(study_id, user)
        with locked(study_id, user) as study:
            path.unlink()
            StudyFile(path).lock_path.unlink(missing_ok=True)  # waiters then find no study
            log.info("study %s (%s) deleted by %s", study_id, study.name, user)
        return Response(status_code=204)

    # --------------------------------------------------------------------------- ask/tell

    @router.post("/studies/{study_id}/ask", response_model=list[SuggestionOut])
    def ask(study_id: str, body: AskIn, user: User) -> list[SuggestionOut]:
        """``n`` mixtures to train: enqueued ones first, then new ones away from those pending."""
        with locked(study_id, user) as study:
            within(lambda: quotas.check_ask(body.n, len(study.suggestions)))
            asked = attempt(409, lambda: study.ask(body.n))  # e.g. a space with no new mixture
        return [
            SuggestionOut(mixture_id=s.mixture_id, weights=s.weights, source=s.source)
            for s in asked
        ]

    @router.post("/studies/{study_id}/tell", response_model=TellOut)
    def tell(study_id: str, body: TellIn, user: User) -> TellOut:
        """A mixture's result (with ``params`` and ``tokens``: at that scale); telling it again
        at the same scale replaces the result."""
        metrics: float | dict[str, float]
        if body.metrics is not None:
            metrics = body.metrics
        else:
            assert body.value is not None  # TellIn holds exactly one
            metrics = body.value
        with locked(study_id, user) as study:
            known(study, study_id, body.mixture_id)
            objective = attempt(
                422,
                lambda: study.tell(
                    body.mixture_id, metrics, params=body.params, tokens=body.tokens
                ),
            )
        return TellOut(mixture_id=body.mixture_id, objective=objective)

    @router.post("/studies/{study_id}/fail", response_model=FailOut)
    def fail(study_id: str, body: FailIn, user: User) -> FailOut:
        """A pending mixture's run failed: no longer pending, never an observation."""
        with locked(study_id, user) as study:
            known(study, study_id, body.mixture_id)
            attempt(409, lambda: study.fail(body.mixture_id, body.reason))
        return FailOut(mixture_id=body.mixture_id, reason=body.reason)

    @router.post("/studies/{study_id}/enqueue", response_model=EnqueueOut)
    def enqueue(study_id: str, body: EnqueueIn, user: User) -> EnqueueOut:
        """Have the next ask return this mixture first (e.g. the production mixture)."""
        with locked(study_id, user) as study:
            within(lambda: quotas.check_ask(1, len(study.suggestions) + len(study.queue)))
            attempt(422, lambda: study.enqueue(body.weights))
            return EnqueueOut(weights=study.queue[-1], queued=len(study.queue))

    @router.get("/studies/{study_id}/best", response_model=Best | Observed)
    def best(
        study_id: str,
        user: User,
        observed: Annotated[
            bool, Query(description="The best result told, as trained, not the model's optimum.")
        ] = False,
        params: Annotated[
            float | None, Query(gt=0, description="Target model size N (with tokens).")
        ] = None,
        tokens: Annotated[float | None, Query(gt=0, description="Target tokens D.")] = None,
    ) -> Best | Observed:
        """The recommended mixture: the strategy's model optimum at the largest told scale, or a
        scale-aware law's at ``params``/``tokens`` (the study's target by default); with
        ``observed``, the best result told (at that scale, or the largest told)."""
        target = attempt(422, lambda: scale_of(params, tokens, where="params/tokens"))
        study, _ = load(study_id, user)
        if observed:
            return attempt(409, lambda: study.best_observed(target))
        return attempt(409, lambda: study.best(target))

    return router
