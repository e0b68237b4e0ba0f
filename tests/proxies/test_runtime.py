"""Where a proxy runs: ``maybe_compile`` on CPU falls back to eager with a warning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from proxies import runtime
from proxies.runtime import maybe_compile

CPU = torch.device("cpu")


def double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def test_disabled_compile_returns_the_function() -> None:
    assert maybe_compile(double, CPU, False) is double


def test_no_cpp_compiler_means_eager_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpp_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        fn = maybe_compile(double, CPU, True)
    assert fn is double


def test_a_failing_compile_falls_back_to_eager_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
        def compiled(*args: Any) -> Any:
            calls.append(1)
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\nlong log")

        return compiled

    monkeypatch.setattr(runtime, "cpp_compiler", lambda: "/usr/bin/g++")
    monkeypatch.setattr(torch, "compile", broken_compile)
    fn = maybe_compile(double, CPU, True)
    x = torch.arange(3.0)
    with pytest.warns(RuntimeWarning, match="torch.compile failed on CPU .*CppCompileError"):
        torch.testing.assert_close(fn(x), 2 * x)
    torch.testing.assert_close(fn(x), 2 * x)  # eager from now on: no second attempt
    assert calls == [1]


def test_cpp_compiler_honours_cxx(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    cxx = tmp_path / "my-c++"
    cxx.write_text("#!/bin/sh\n")
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(cxx))
    runtime.cpp_compiler.cache_clear()
    try:
        assert runtime.cpp_compiler() == str(cxx)
    finally:
        runtime.cpp_compiler.cache_clear()


def test_the_models_own_errors_are_not_compile_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_raising(fn: Callable[..., Any]) -> Callable[..., Any]:
        def compiled(*args: Any) -> Any:
            raise ValueError("sequence length 17 exceeds the model's seq_len 16")

        return compiled

    monkeypatch.setattr(runtime, "cpp_compiler", lambda: "/usr/bin/g++")
    monkeypatch.setattr(torch, "compile", compile_raising)
    fn = maybe_compile(double, CPU, True)
    with pytest.raises(ValueError, match="exceeds"):
        fn(torch.arange(3.0))
