"""Where and how a proxy runs: the device, its number format, CPU threads, compilation.

- ``resolve_device("auto")`` is CUDA when available, else CPU.
- ``autocast_for(device)``: bf16 autocast on CUDA; nothing (fp32) on CPU, where bf16 matmuls run
  at 1-3 GFLOP/s against ~150 for fp32 on a CPU without AVX512-BF16.
- ``cpu_settings(device, threads)``: on CPU, flush denormals to zero (tiny AdamW updates are
  otherwise 4-60x slower) and use ``threads`` torch threads (the CPUs the runner granted), both
  restored afterwards; also ``tune_malloc`` once per process.
- ``tune_malloc``: on Linux/glibc, raise the mmap and trim thresholds to 1 GiB so the (B*T, V)
  logit-sized buffers are reused instead of being fresh mmaps that page-fault on every step (the
  tiny proxy trains ~1.3x faster); ``PROXIES_MALLOC_TUNING=0`` turns it off.
- ``maybe_compile(fn, device, enabled)``: ``torch.compile`` on CUDA when enabled; CPU runs stay
  eager (inductor needs a C++ toolchain there and gains little at proxy sizes).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available")
    return torch.device(device)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing (fp32) on CPU, where bf16 matmuls are ~100x slower."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def tune_malloc() -> bool:
    """Keep freed large buffers in the heap (glibc mallopt); True when applied. Once per process."""
    if os.environ.get("PROXIES_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
        )
    except (OSError, AttributeError):  # not glibc
        return False


@contextlib.contextmanager
def cpu_settings(device: torch.device, threads: int | None) -> Iterator[None]:
    """On CPU: flush denormals and use ``threads`` torch threads; both are restored after
    (flush-to-zero is process-wide state that other numerical code must not inherit)."""
    previous = torch.get_num_threads()
    flushing = False
    if device.type == "cpu":
        tune_malloc()
        flushing = torch.set_flush_denormal(True)
        if threads is not None:
            torch.set_num_threads(threads)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def maybe_compile(fn: F, device: torch.device, enabled: bool) -> F:
    """``torch.compile(fn)`` when ``enabled`` on CUDA; ``fn`` itself otherwise."""
    if enabled and device.type == "cuda":
        return torch.compile(fn)  # type: ignore[return-value]
    return fn


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
