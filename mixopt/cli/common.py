"""What every ``mixopt`` command shares: error reporting, cancellation, common options."""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec

F = TypeVar("F", bound=Callable[..., Any])

WeightsOption = Annotated[
    str, typer.Option(help="Weight columns: a prefix (e.g. train_the_pile_) or a comma list.")
]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """A MixoptError becomes one line on stderr and exit status 2, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MixoptError as error:
            fail(str(error))

    return wrapper  # type: ignore[return-value]


def echo_err(line: str) -> None:
    typer.echo(line, err=True)


CANCELLED_EXIT = 3  # a job cancelled by SIGTERM exits with this status


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`~mixopt.job.JobCancelled`, so a cancelled job stops its
    trials, saves its state and marks itself 'cancelled' (exit status 3) instead of dying
    mid-write. Only the first SIGTERM raises: later ones must not interrupt the saving."""
    from mixopt.job import JobCancelled

    received = False

    def handler(signum: int, frame: object) -> None:
        nonlocal received
        if received:
            return
        received = True
        raise JobCancelled("cancelled (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except JobCancelled as error:
        fail(str(error), code=CANCELLED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)


def preflight(spec: JobSpec, runner: str) -> None:
    """Before a job reads or trains anything: the service's policy (when this process runs a
    service's job) and what this machine can hold."""
    from mixopt.runners.capacity import check_capacity
    from mixopt.service.policy import JobPolicy

    policy = JobPolicy.from_env()
    if policy is not None:
        policy.enforce(spec)
    check_capacity(spec, runner=runner)
