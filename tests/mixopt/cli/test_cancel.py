"""SIGTERM becomes a cancellation (exit status 3) even when it lands where Python swallows
exceptions; a second SIGTERM does not interrupt the stopping."""

from __future__ import annotations

import os
import signal
import time
import weakref

import pytest
import typer

from mixopt.cli.common import CANCELLED_EXIT, cancel_on_sigterm


class _Thing:
    pass


def test_a_cancel_swallowed_by_a_finaliser_is_delivered_again():
    reached: list[str] = []

    def finaliser(_: object) -> None:  # runs during garbage collection
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000):  # the handler runs (and raises) in here: swallowed
            pass
        reached.append("finaliser done")

    with pytest.raises(typer.Exit) as stopped, cancel_on_sigterm():
        thing = _Thing()
        ref = weakref.ref(thing, finaliser)
        del thing  # the cancellation raised in the finaliser is lost there...
        reached.append("training")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the job "trains on"
            time.sleep(0.01)
        reached.append("trained on")
    assert ref() is None
    assert reached == ["training"]  # ...and came back to stop the job where it trained on
    assert stopped.value.exit_code == CANCELLED_EXIT


def test_a_second_sigterm_does_not_interrupt_the_stopping():
    saved: list[str] = []
    with pytest.raises(typer.Exit) as stopped, cancel_on_sigterm():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:  # the driver saves its state here
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            saved.append("state saved")
    assert saved == ["state saved"] and stopped.value.exit_code == CANCELLED_EXIT
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM)
    )
