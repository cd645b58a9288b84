"""Thread names in the operating system, where ``top -H``, ``ps -L``, /proc and the
benchmarks' per-thread CPU see them (Python's thread names stay inside Python: every
thread of a process reads "python" there). Linux only; elsewhere these do nothing."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from typing import Iterator

_PR_SET_NAME, _PR_GET_NAME = 15, 16


def _prctl():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (at most 15 characters) in the operating system,
    where ``top -H``, ``ps -L`` and /proc show it: Python's thread names stay inside
    Python, so every thread of a node process reads "python" there. The benchmarks use
    it to tell the landmark node's MediaPipe workers from the executor thread when all
    nodes share one process. Does nothing where Linux's prctl is not available.
    """
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def os_thread_name() -> str | None:
    """The calling thread's name in the operating system (None where unknown)."""
    prctl = _prctl()
    if prctl is None:
        return None
    buf = ctypes.create_string_buffer(16)
    if prctl(_PR_GET_NAME, buf, 0, 0, 0) != 0:
        return None
    return buf.value.decode(errors="replace")


@contextlib.contextmanager
def threads_named(name: str) -> Iterator[None]:
    """Name the threads a library starts inside the block ``name``: a new thread takes
    its creator's operating-system name, so the calling thread carries ``name`` for the
    block and its own name again after. LiteRT starts its thread pool when an
    interpreter is made: in a node process, from the main thread, which made its
    threads look like the process's other "python" threads (in the one-process
    pipeline, the benchmarks counted the image model's second thread as MediaPipe's)."""
    before = os_thread_name()
    if before is None:
        yield
        return
    name_os_thread(name)
    try:
        yield
    finally:
        name_os_thread(before)
