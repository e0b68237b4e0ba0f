"""Atomic writes never destroy what is not a regular file."""

from __future__ import annotations

import os
import threading

import pytest

from mixopt.atomic import write_atomic
from mixopt.errors import MixoptError


def test_a_regular_file_is_replaced_and_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(10)
    assert received == [b"through the pipe"]
    assert fifo.is_fifo()


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(MixoptError, match="is a directory"):
        write_atomic(tmp_path, "x")
