"""A failure stays in its node: an exception that escapes one of a node's callbacks is
logged with the node's name (once per kind and place, then with a count at most every
30 s), counted in the node's /diagnostics (``callback_errors_total``), and the
executor goes on with the next callback. Without this, one node's bug ended the
executor's thread and with it every node that the thread spins: in one process, all
of them. While the context shuts down an exception goes on as before (a publish on a
context being shut down fails; that is part of stopping).
"""

from __future__ import annotations

import threading
import traceback
import weakref

from rclpy.node import Node

from .bad_input import OnceLog
from .diagnostics import Diagnostics

_once: "weakref.WeakKeyDictionary[Node, OnceLog]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def callback_failed(node: Node | None, exc: BaseException) -> None:
    """Log and count ``exc``, which escaped a callback of ``node`` (None: unknown owner)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    if node is None:
        from rclpy import logging as rclpy_logging

        rclpy_logging.get_logger("emotion_perception").error(
            f"a callback failed: {type(exc).__name__}: {exc} (at {where}); the executor keeps running")
        return
    diagnostics = Diagnostics.of(node)
    if diagnostics is not None:
        diagnostics.callback_failed()
    with _lock:
        once = _once.get(node)
        if once is None:
            once = _once[node] = OnceLog(node)
    once.error(f"callback:{type(exc).__name__}:{where}",
               f"{node.get_fully_qualified_name()}: a callback failed: {type(exc).__name__}: {exc} (at {where}); "
               "the node keeps running (counted in /diagnostics callback_errors_total)")


def contained(node: Node | None, callback):
    """``callback`` wrapped so that an exception it raises goes to :func:`callback_failed`
    (raised on while the node's context shuts down: a publish then fails, and that is
    part of stopping, not a failure)."""
    def run(*args):
        try:
            callback(*args)
        except Exception as e:  # noqa: BLE001 - see the module docstring
            if node is not None and not node.context.ok():
                raise
            callback_failed(node, e)

    return run
