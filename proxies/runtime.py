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
- ``maybe_compile(fn, device, enabled)``: ``torch.compile`` when enabled. On CPU inductor needs a
  C++ compiler (``cpp_compiler``); without one, or when compiling fails, the run trains eagerly
  after a one-line warning. On CPU it pays only for longer runs with inductor's on-disk cache
  warm: the tiny proxy at the demo's shape (B 8, T 128, vocab 1024, one thread) compiles in
  ~37 s wall cold (~8 s of this process's CPU, the rest in inductor's compile workers) and
  ~2.6 s warm, and then steps ~1.15-1.2x faster than eager; a demo proxy trains 10-60 s, so
  ``TrainConfig.compile`` stays off by default.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import sys
import warnings
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


@functools.cache
def cpp_compiler() -> str | None:
    """The C++ compiler inductor can use on CPU (``$CXX``, else g++, c++ or clang++ on PATH)."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


class _CompiledOrEager:
    """``fn`` compiled, falling back to ``fn`` itself (for good) when compiling fails (a
    RuntimeError, as dynamo's and inductor's errors are, or an OSError); compiling happens inside
    a call, before the graph runs, so the eager retry starts from the same state. Other errors
    (a ValueError of the model's own checks) propagate."""

    def __init__(self, fn: Callable[..., Any], compiled: Callable[..., Any]) -> None:
        self.fn: Callable[..., Any] = fn
        self.compiled: Callable[..., Any] | None = compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except (RuntimeError, OSError) as exc:  # dynamo/inductor errors, a broken toolchain
                self.compiled = None
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                warnings.warn(
                    f"torch.compile failed on CPU ({type(exc).__name__}: {reason}); "
                    "training eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self.fn(*args, **kwargs)


def maybe_compile(fn: F, device: torch.device, enabled: bool) -> F:
    """``torch.compile(fn)`` when ``enabled``; ``fn`` itself otherwise. On CPU: eager, with a
    warning, when no C++ compiler is present or compiling fails at a call."""
    if not enabled:
        return fn
    if device.type != "cpu":
        return torch.compile(fn)  # type: ignore[return-value]
    if cpp_compiler() is None:
        warnings.warn(
            "compile: no C++ compiler (g++/clang++ or $CXX) for torch.compile on CPU; "
            "training eagerly",
            RuntimeWarning,
            stacklevel=2,
        )
        return fn
    return _CompiledOrEager(fn, torch.compile(fn))  # type: ignore[return-value]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
