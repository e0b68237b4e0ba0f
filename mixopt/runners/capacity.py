"""What this machine can run: a spec's trials checked against its memory and cores before
anything trains.

A batch of a billion sequences, a million-token vocabulary or a million tokenizer processes fail
here, naming the field to change, instead of as an out-of-memory kill (or a frozen machine) once
the job is under way. The estimates are deliberately rough upper bounds of what one trial holds
at once, in float32: the weights, their gradients and Adam's two moments, plus the activations of
one micro-batch (attention, MLP and the logits over the vocabulary, forward and backward); and
for the search, the candidate mixtures a proposer scores at once. ``mixopt run``/``resume`` and
the service's admission call :func:`check_capacity`; on a Ray cluster (``ray_address``) the
trials' machines are elsewhere and only the driver's own needs are checked.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec, ProxySpec

TRIALS_SHARE = 0.8  # of the machine's memory that the trials running at once may take
SEARCH_SHARE = 0.25  # of the machine's memory that the driver's candidate pools may take
WORKERS_PER_CPU = 4  # tokenizer processes per core: more only thrash
_FLOAT = 4


class CapacityError(MixoptError):
    """The spec asks for more than the machine has (names the field and the numbers)."""


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_bytes: int

    @classmethod
    @functools.cache
    def detect(cls) -> Machine:
        """This machine (its CPU affinity, and its memory or its cgroup's limit if lower)."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        try:
            limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
            if limit.isdigit():
                memory = min(memory, int(limit))
        except OSError:
            pass
        return cls(cpus=max(1, cpus), memory_bytes=int(memory))


def trial_memory(proxy: ProxySpec, vocab_size: int) -> int:
    """Bytes one trial of ``proxy`` holds at its peak (see the module docstring)."""
    cfg = proxy.gpt_config(vocab_size)
    state = cfg.total_params() * _FLOAT * 4  # weights, gradients, Adam's m and v
    micro = proxy.micro_batch_size or proxy.batch_size
    top_k = int(getattr(cfg, "top_k", 1))
    per_layer = 16 * cfg.d_model + 3 * cfg.d_ff * top_k + 2 * cfg.n_head * proxy.seq_len
    per_token = cfg.n_layer * per_layer + 2 * vocab_size  # + the logits and their gradient
    activations = micro * proxy.seq_len * per_token * _FLOAT
    return int(state + activations)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"  # pragma: no cover


def check_capacity(spec: JobSpec, machine: Machine | None = None, *, runner: str = "ray") -> None:
    """Raise :class:`CapacityError` when ``spec`` cannot run on ``machine`` (default: this one)
    with ``runner`` (``local`` trains one trial at a time in this process)."""
    machine = machine or Machine.detect()
    memory = machine.memory_bytes
    workers = spec.data.workers
    if workers > WORKERS_PER_CPU * machine.cpus:
        raise CapacityError(
            f"data.workers: {workers} tokenizer processes on a machine with {machine.cpus} CPU "
            f"core(s); at most {WORKERS_PER_CPU * machine.cpus} (0 = one per core)"
        )
    n_domains = len(spec.domains)
    pool = max(spec.search.candidates, spec.search.initial_trials) * n_domains * 8 * 4
    if pool > SEARCH_SHARE * memory:
        raise CapacityError(
            f"search.candidates: scoring {spec.search.candidates} candidate mixtures of "
            f"{n_domains} domains needs about {_size(pool)}; this machine has {_size(memory)}: "
            "lower search.candidates"
        )
    if spec.resources.ray_address:
        return
    at_once = 1
    if runner != "local":
        slots = max(1, int(machine.cpus // spec.resources.cpus_per_trial))
        at_once = min(spec.resources.max_concurrent_trials, slots)
    vocab = spec.tokenizer.vocab_size
    proxies = [("proxy", p) for p in spec.fidelity_proxies()]
    if spec.validate_.enabled:
        proxies.append(("validate", spec.validation_proxy()))
    for where, proxy in proxies:
        need = trial_memory(proxy, vocab)
        if need * at_once > TRIALS_SHARE * memory:
            times = f" x {at_once} trials at once" if at_once > 1 else ""
            raise CapacityError(
                f"{where}: one trial needs about {_size(need)}{times} (preset {proxy.preset}, "
                f"batch_size {proxy.batch_size}, seq_len {proxy.seq_len}, vocab_size {vocab}); "
                f"this machine has {_size(memory)}: lower batch_size (or set micro_batch_size), "
                "seq_len, tokenizer.vocab_size or the preset"
                + (", or resources.max_concurrent_trials" if at_once > 1 else "")
            )
