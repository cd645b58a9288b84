"""Bad input gets one actionable log line, not one per message: :class:`OnceLog`, and
the refusal of array messages with more faces than a landmark node finds."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

from rclpy.node import Node

from ..conversions import ConversionError, check_face_count
from ..types import MAX_FACES_LIMIT

if TYPE_CHECKING:
    from .diagnostics import Diagnostics


class OnceLog:
    """Log each kind of bad input once per ``repeat_s`` with a running count.

    ``warn(key, text)`` logs ``text`` the first time ``key`` is seen and then at most
    every ``repeat_s`` seconds ("... (37 times so far)"), so a stream of bad frames
    produces one actionable line, not a line per frame. ``repeat_s=math.inf``: once
    per run.
    """

    def __init__(self, node: Node, repeat_s: float = 30.0):
        self._node = node
        self._repeat_s = repeat_s
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _emit(self, level: str, key: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            first = key not in self._seen
            last, count = self._seen.get(key, (now, 0))
            count += 1
            due = first or now - last >= self._repeat_s
            self._seen[key] = (now if due else last, count)
        if due:
            suffix = f" ({count} times so far)" if count > 1 else ""
            # One call site per severity: rclpy remembers each call site's severity
            # and raises ("Logger severity cannot be changed between calls") when one
            # line logs at two levels, which killed the executor thread of a node that
            # logged an error and then a warning through here.
            if level == "error":
                self._node.get_logger().error(text + suffix)
            else:
                self._node.get_logger().warning(text + suffix)

    def error(self, key: str, text: str) -> None:
        self._emit("error", key, text)

    def warn(self, key: str, text: str) -> None:
        self._emit("warning", key, text)

    def count(self, key: str) -> int:
        return self._seen.get(key, (0, 0))[1]


def refuse_oversized(items, topic: str | Callable[[], str], once: OnceLog, diagnostics: Diagnostics) -> bool:
    """True, logged once and counted as bad input, when an array message holds more
    faces than a landmark node finds (:func:`..conversions.check_face_count`); the
    caller then drops the message instead of working through every face. ``topic``
    (or a function giving it, called only for the log line) names the input."""
    if len(items) <= MAX_FACES_LIMIT:  # every message a landmark node sends: nothing else to do
        return False
    try:
        check_face_count(len(items), f"a message on {topic() if callable(topic) else topic}")
    except ConversionError as e:
        diagnostics.error()
        once.warn("too_many_faces", str(e))
        return True
    return False
