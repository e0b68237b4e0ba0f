"""What every ``mixopt`` command shares: error reporting, cancellation, common options."""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer

from mixopt.errors import MixoptError

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


def require_finite(values: Any, what: str) -> None:
    import numpy as np

    bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
    if len(bad):
        rows = ", ".join(str(i) for i in bad[:5])
        raise MixoptError(f"{what} has {len(bad)} missing or non-finite value(s) (rows {rows})")


def echo_err(line: str) -> None:
    typer.echo(line, err=True)


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`~mixopt.job.JobCancelled`, so a cancelled job stops its
    trials, saves its state and marks itself 'cancelled' instead of dying mid-write."""
    from mixopt.job import JobCancelled

    def handler(signum: int, frame: object) -> None:
        raise JobCancelled("cancelled (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except JobCancelled as error:
        fail(str(error), code=3)
    finally:
        signal.signal(signal.SIGTERM, previous)
