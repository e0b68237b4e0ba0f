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
ParamsColumnOption = Annotated[
    str | None, typer.Option(help="Column of each run's model size N (non-embedding parameters).")
]
TokensColumnOption = Annotated[
    str | None, typer.Option(help="Column of each run's training tokens D.")
]


def scale_columns(params_column: str | None, tokens_column: str | None) -> bool:
    """Whether a table names each run's scale: both columns, or neither (else an error)."""
    if (params_column is None) != (tokens_column is None):
        raise MixoptError("give both --params-column and --tokens-column, or neither")
    return params_column is not None


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
    mid-write.

    A signal handler's exception surfaces wherever the main thread is, and Python swallows it
    when that is a finaliser or a weakref callback (garbage collection: "Exception ignored
    in ..."), which would leave the job training on. Such a swallowed cancellation is delivered
    again a moment later. Once it has been raised where it propagates, further SIGTERMs are
    ignored, so they cannot interrupt the saving of the job's state.
    """
    import os
    import sys
    import threading

    from mixopt.job import JobCancelled

    state = {"requested": False, "swallowed": False}

    def handler(signum: int, frame: object) -> None:
        if state["requested"] and not state["swallowed"]:
            return
        state["requested"], state["swallowed"] = True, False
        raise JobCancelled("cancelled (SIGTERM)")

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, JobCancelled):  # raised inside a finaliser: again
            state["swallowed"] = True
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return
        previous_hook(info)

    previous = signal.signal(signal.SIGTERM, handler)
    sys.unraisablehook = unraisable
    try:
        yield
    except JobCancelled as error:
        fail(str(error), code=CANCELLED_EXIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


def preflight(spec: JobSpec, runner: str) -> None:
    """Before a job reads or trains anything: the service's policy (when this process runs a
    service's job) and what this machine can hold."""
    from mixopt.runners.capacity import check_capacity
    from mixopt.service.policy import JobPolicy

    policy = JobPolicy.from_env()
    if policy is not None:
        policy.enforce(spec)
    check_capacity(spec, runner=runner)
