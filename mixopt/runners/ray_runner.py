"""Ray runner: each trial is a Ray task asking for the CPUs/GPUs the spec grants it.

Local Ray starts when no address is given (``RAY_ADDRESS`` or ``--ray-address`` join a cluster).
A task that raised is a trial failure (abandoned: retrying the same code on the same data gives
the same error); a worker or node that died is retryable.

A local Ray of our own listens on the loopback interface only: its GCS, raylet, object manager,
agents and workers bind 127.0.0.1, never every interface (Ray's own documentation says they must
never be reachable from an untrusted network). Ray picks its node address when it is imported,
so the runner tells it before importing it (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: the
single-machine mode Ray uses on laptops) and checks, once Ray is up, that the node's address is
the loopback one. ``ray.init`` also installs its own SIGTERM handler, which would turn a
cancellation into an exit with status 1; the runner puts the driver's handler back, and unwraps
the cancellation Ray hands back as a SystemError when the signal lands in one of its calls.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mixopt.runners.base import Runner, RunnerEvent, group_events, is_environmental
from mixopt.trials import TrialRequest
from mixopt.worker import execute_group, execute_trial

LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine (loopback) mode


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ray runs the driver's signal handlers inside its own C calls, and wraps what they raise
    in a SystemError: a cancellation (or Ctrl-C) raised there is raised again as itself."""
    try:
        yield
    except SystemError as error:
        cause = error.__cause__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise


def _loopback_only() -> None:
    """Make an already imported Ray pick the loopback address for a local cluster too."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


class RayRunner(Runner):
    def __init__(
        self,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        num_cpus: int | None = None,
        execute: Callable[[TrialRequest], dict[str, Any]] = execute_trial,
    ) -> None:
        self.address = address
        self.execute = execute  # a module-level function: Ray ships it to workers by reference
        self.cpus_per_trial = cpus_per_trial
        self.gpus_per_trial = gpus_per_trial
        self.num_cpus = num_cpus
        self._refs: dict[Any, list[str]] = {}  # ObjectRef -> trial ids (one, or a group's)
        self._remote: Any = None
        self._remote_group: Any = None
        self._owns_ray = False

    def start(self) -> None:
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address is None and "ray" not in sys.modules:
            os.environ[LOOPBACK_ENV] = "0"  # read when ray is imported
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False}
            if address is None:  # a local Ray of our own; a cluster keeps its own settings
                _loopback_only()
                kwargs.update(
                    include_dashboard=False,
                    num_cpus=self.num_cpus,
                    object_store_memory=200 * 1024**2,
                    _node_ip_address=LOOPBACK,
                )
            main = threading.current_thread() is threading.main_thread()
            handler = signal.getsignal(signal.SIGTERM) if main else None
            # "local" always starts a fresh local Ray: never join a cluster someone else started
            ray.init(address=address or "local", **kwargs)
            self._owns_ray = True
            if handler is not None:  # Ray's handler would exit 1 instead of cancelling
                signal.signal(signal.SIGTERM, handler)
            if address is None:
                node = ray.util.get_node_ip_address()
                if not ipaddress.ip_address(node).is_loopback:
                    self.shutdown()
                    raise RuntimeError(f"the local Ray bound {node}, not the loopback interface")
        resources = {
            "num_cpus": self.cpus_per_trial,
            "num_gpus": self.gpus_per_trial,
            "max_retries": 0,
        }
        self._remote = ray.remote(self.execute).options(**resources)
        self._remote_group = ray.remote(execute_group).options(**resources)

    def describe(self) -> str:
        import ray

        where = self.address or os.environ.get("RAY_ADDRESS") or "local"
        cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else "?"
        return f"Ray ({where}, {cpus} CPUs)"

    def submit(self, request: TrialRequest) -> None:
        if self._remote is None:
            raise RuntimeError("RayRunner.start() must be called before submit()")
        self._refs[self._remote.remote(request)] = [request.trial_id]

    def submit_group(self, requests: list[TrialRequest], *, stacking: str, max_stack: int) -> None:
        """One task trains the group (stacked on its GPU where that is faster)."""
        if self._remote_group is None:
            raise RuntimeError("RayRunner.start() must be called before submit_group()")
        ref = self._remote_group.remote(requests, stacking=stacking, max_stack=max_stack)
        self._refs[ref] = [r.trial_id for r in requests]

    def poll(self, timeout: float) -> list[RunnerEvent]:
        import ray
        from ray.exceptions import RayTaskError

        if not self._refs:
            return []
        with _interruptible():
            done, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
            if done:  # collect everything else that is ready too
                done, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        events = []
        for ref in done:
            trial_ids = self._refs.pop(ref)
            try:
                with _interruptible():
                    value = ray.get(ref)
                if isinstance(value, list):
                    events.extend(group_events(value))
                else:
                    events.append(RunnerEvent(trial_ids[0], result=value))
            except RayTaskError as error:
                cause = error.cause if error.cause is not None else error
                message = f"{type(cause).__name__}: {cause}"
                retryable = is_environmental(cause)
                events.extend(RunnerEvent(t, error=message, retryable=retryable) for t in trial_ids)
            except Exception as error:  # worker/node died, object lost, cancelled
                message = f"{type(error).__name__}: {error}"
                events.extend(RunnerEvent(t, error=message, retryable=True) for t in trial_ids)
        return events

    def cancel(self, trial_id: str) -> None:
        import ray

        for ref, trial_ids in list(self._refs.items()):
            if trial_id in trial_ids:  # a group is cancelled as a whole
                ray.cancel(ref, force=True)
                del self._refs[ref]

    def shutdown(self) -> None:
        import ray

        for ref in list(self._refs):
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
