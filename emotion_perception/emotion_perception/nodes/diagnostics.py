"""Each node's status on ``/diagnostics``: processing time, rate, counts, memory."""

from __future__ import annotations

import collections
import threading
import time
import weakref
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from .memory import MEMORY_TRIM
from .qos import RESULT_QOS


DIAGNOSTICS_PERIOD_S = 1.0
_BY_NODE: "weakref.WeakKeyDictionary[Node, Diagnostics]" = weakref.WeakKeyDictionary()


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on ``/diagnostics`` every second.

    The node calls :meth:`tick` with the processing time of each handled input and
    :meth:`dropped` for each input it skipped; extra key/values come from the functions
    in ``extras``: ``extra`` first, then those other parts of the node add (they report
    their own).
    ``activity`` (set by :class:`~emotion_perception.nodes.lazy.LazyInputs`) returns
    ("active" or "idle", why): an idle node says so in its status message.
    :meth:`callback_failed` counts exceptions that escaped one of the node's callbacks
    (caught by the executor, which keeps the process's other nodes running);
    :meth:`input_lost` the messages its input queues lost before it took them (counted
    by the executor).
    """

    def __init__(self, node: Node, warn_processing_ms: float = 100.0,
                 extra: Callable[[], dict[str, Any]] | None = None):
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._warn_ms = warn_processing_ms
        self.extras: list[Callable[[], dict[str, Any]]] = [extra] if extra else []
        self._lock = threading.Lock()
        self._times_ms: collections.deque[float] = collections.deque(maxlen=300)
        self._stamps: collections.deque[float] = collections.deque(maxlen=300)
        self.processed = 0
        self.dropped_total = 0
        self.errors_total = 0
        self.callback_errors_total = 0
        self.input_lost_total = 0
        self.activity: Callable[[], tuple[str, str]] | None = None
        self._timer = node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish)
        _BY_NODE[node] = self

    @staticmethod
    def of(node: Node) -> "Diagnostics | None":
        """The Diagnostics a node made, if any."""
        return _BY_NODE.get(node)

    def tick(self, processing_ms: float) -> None:
        with self._lock:
            self._times_ms.append(processing_ms)
            self._stamps.append(time.monotonic())
            self.processed += 1

    def dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped_total += n

    def error(self, n: int = 1) -> None:
        with self._lock:
            self.errors_total += n

    def input_lost(self, n: int) -> None:
        """``n`` messages of an input topic were lost in the subscription's queue before the
        node took them (counted by the executor: :mod:`.sequence_gaps`)."""
        with self._lock:
            self.input_lost_total += n

    def callback_failed(self, n: int = 1) -> None:
        with self._lock:
            self.callback_errors_total += n

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            times = sorted(self._times_ms)
            now = time.monotonic()
            recent = [s for s in self._stamps if now - s <= 5.0]
            mean_ms = sum(times) / len(times) if times else 0.0
            p95_ms = times[int(0.95 * (len(times) - 1))] if times else 0.0
            rate = len(recent) / 5.0
            return {"processing_time_mean_ms": mean_ms, "processing_time_p95_ms": p95_ms,
                    "rate_hz": rate, "processed_total": self.processed,
                    "dropped_total": self.dropped_total, "bad_input_total": self.errors_total,
                    "callback_errors_total": self.callback_errors_total, "input_lost_total": self.input_lost_total}

    def publish(self) -> None:
        MEMORY_TRIM.check()
        snap = self.snapshot()
        snap.update(rss_mb=MEMORY_TRIM.rss_mb(), memory_trims_total=MEMORY_TRIM.trims)
        activity = self.activity() if self.activity is not None else None  # first: it may check and count
        for more in self.extras:
            snap.update(more())
        if activity is not None:
            snap.update(activity=activity[0], activity_reason=activity[1])
        status = DiagnosticStatus()
        status.name = f"{self._node.get_fully_qualified_name()}"
        status.hardware_id = "emotion_perception"
        if snap["processing_time_p95_ms"] > self._warn_ms:
            status.level = DiagnosticStatus.WARN
            status.message = f"slow: p95 processing {snap['processing_time_p95_ms']:.1f} ms"
        elif snap["callback_errors_total"]:
            status.level = DiagnosticStatus.WARN
            status.message = f"{snap['callback_errors_total']} callback(s) failed (see the log)"
        else:
            status.level = DiagnosticStatus.OK
            status.message = "ok"
        if activity is not None and activity[0] == "idle":
            status.message = f"idle: {activity[1]}" + ("" if status.level == DiagnosticStatus.OK
                                                        else f"; {status.message}")
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                         for k, v in snap.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self._node.get_clock().now().to_msg()
        arr.status = [status]
        self._pub.publish(arr)
