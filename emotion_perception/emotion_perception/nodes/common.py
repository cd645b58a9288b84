"""Shared plumbing of the package's nodes: QoS, parameters, diagnostics, logging
bad input once, synchronising by stamp, and a clean ``main()``.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import math
import os
import sys
import threading
import time
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

#: Camera input: best effort, keep last 1-5; matches best-effort and reliable publishers.
SENSOR_QOS = qos_profile_sensor_data
#: Results: reliable, a short queue.
RESULT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: Metadata published once: late joiners still get it.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

DIAGNOSTICS_PERIOD_S = 1.0


@dataclasses.dataclass(frozen=True)
class Param:
    """A node parameter with its description and accepted range.

    ``low``/``high`` bound numbers (inclusive); ``choices`` bounds strings.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
            elif isinstance(self.default, float):
                d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high),
                                                             step=0.0)]
        return d

    def expected(self) -> str:
        """What the parameter takes, in words: type name and range ("a floating-point
        number in [0.0, 1.0] (integers accepted)")."""
        if isinstance(self.default, bool):
            return "a bool (true or false)"
        if isinstance(self.default, str):
            return "a string" + (f", one of: {', '.join(self.choices)}" if self.choices else "")
        kind = "an integer" if isinstance(self.default, int) else "a floating-point number"
        if self.low is not None and self.high is not None:
            kind += f" in the range [{self._fmt(self.low)}, {self._fmt(self.high)}]"
        elif self.low is not None:
            kind += f" >= {self._fmt(self.low)}"
        elif self.high is not None:
            kind += f" <= {self._fmt(self.high)}"
        return kind + (" (integers accepted)" if isinstance(self.default, float) else "")

    def _fmt(self, bound: float) -> str:
        return str(int(bound)) if isinstance(self.default, int) else str(float(bound))

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type where that loses nothing: an integer for
        a floating-point parameter becomes a float (``ros2 param set ... 1`` for 1.0)."""
        if isinstance(self.default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def check(self, value: Any) -> str | None:
        """None if ``value`` (after :meth:`coerce`) is acceptable, else the reason it is
        not, naming the expected type and range."""
        if isinstance(self.default, bool):
            ok = isinstance(value, bool)
        elif isinstance(self.default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(self.default, float):
            ok = isinstance(value, float) and math.isfinite(value)
        else:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        if ok and isinstance(self.default, (int, float)) and not isinstance(self.default, bool):
            ok = not (self.low is not None and value < self.low or self.high is not None and value > self.high)
        if ok:
            return None
        return f"{self.name} expects {self.expected()}, got {_describe_value(value)}"


def _describe_value(value: Any) -> str:
    """A parameter value with its type in words, for refusals."""
    if isinstance(value, bool):
        kind = "the bool"
    elif isinstance(value, int):
        kind = "the integer"
    elif isinstance(value, float):
        kind = "the floating-point number"
    elif isinstance(value, str):
        kind = "the string"
    elif value is None:
        return "no value"
    else:
        kind = "an array"
        value = list(value)
    return f"{kind} {value!r}"


class ParameterError(ValueError):
    """A parameter given at start is of the wrong type or out of range."""


def declare_parameters(node: Node, params: list[Param], on_change: Callable[[dict], None] | None = None,
                       validate: Callable[[dict], str | None] | None = None) -> dict:
    """Declare ``params`` with descriptors, validate start values, guard later sets.

    Every value is validated before it is stored: a value of the wrong type, out of
    range, or refused by ``validate`` (rules between parameters, given every value
    as it would be after the change; returns the reason or None) given at start
    raises :class:`ParameterError` (the node cannot start with it); one set at run
    time (``Node.set_parameters``, ``ros2 param set``) is refused with a reason that
    names the expected type and range, and the node keeps its value. An integer given
    for a floating-point parameter is taken as that number.

    How: descriptors keep their types static (``ros2 param describe`` shows them), so
    a value of the wrong type would otherwise be refused by rclpy before any of our
    callbacks with type codes ("expected '2' got '4'"), and an integer for a double
    refused outright. A pre-set callback therefore converts integers for doubles, and
    replaces a value it finds invalid by the current one, remembering why; the on-set
    callback then refuses the change with that reason. ``on_change`` runs only for
    changes that pass every check.

    Returns:
        name -> value of every parameter.
    """
    from rclpy.parameter import Parameter as RclpyParameter

    by_name = {p.name: p for p in params}
    values = {}
    for p in params:
        try:
            value = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except Exception as e:  # rclpy raises several types for a bad override
            raise ParameterError(f"{node.get_name()}: parameter {p.name}: {e}; it expects {p.expected()}") from None
        value = p.coerce(value)
        reason = p.check(value)
        if reason:
            raise ParameterError(f"{node.get_name()}: {reason}")
        values[p.name] = value
    if validate:
        reason = validate(dict(values))
        if reason:
            raise ParameterError(f"{node.get_name()}: {reason}")
    refused = threading.local()  # pre-set -> on-set, within one set_parameters call

    def pre_set(changes) -> list:
        out, reasons = [], []
        for c in changes:
            p = by_name.get(c.name)
            if p is None or c.type_ == RclpyParameter.Type.NOT_SET:
                out.append(c)
                continue
            value = p.coerce(c.value)
            reason = p.check(value)
            if reason:
                reasons.append(reason)
                out.append(RclpyParameter(c.name, value=values[c.name]))  # passes rclpy; refused below
            else:
                out.append(RclpyParameter(c.name, value=value) if value is not c.value else c)
        refused.reasons = reasons
        return out

    def guard(changes) -> SetParametersResult:
        reasons, refused.reasons = getattr(refused, "reasons", []), []
        updates = {c.name: c.value for c in changes if c.name in by_name}
        if not reasons and validate and updates:
            reason = validate({**values, **updates})
            if reason:
                reasons = [reason]
        if reasons:
            reason = "; ".join(reasons)
            node.get_logger().error(f"refused parameter change: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        values.update(updates)
        if on_change and updates:
            on_change(updates)
        return SetParametersResult(successful=True)

    node.add_pre_set_parameters_callback(pre_set)
    node.add_on_set_parameters_callback(guard)
    return values


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


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on ``/diagnostics`` every second.

    The node calls :meth:`tick` with the processing time of each handled input and
    :meth:`dropped` for each input it skipped; extra key/values come from ``extra``.
    """

    def __init__(self, node: Node, warn_processing_ms: float = 100.0,
                 extra: Callable[[], dict[str, Any]] | None = None):
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", RESULT_QOS)
        self._warn_ms = warn_processing_ms
        self._extra = extra
        self._lock = threading.Lock()
        self._times_ms: collections.deque[float] = collections.deque(maxlen=300)
        self._stamps: collections.deque[float] = collections.deque(maxlen=300)
        self.processed = 0
        self.dropped_total = 0
        self.errors_total = 0
        self._timer = node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish)

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
                    "dropped_total": self.dropped_total, "bad_input_total": self.errors_total}

    def publish(self) -> None:
        MEMORY_TRIM.check()
        snap = self.snapshot()
        snap.update(rss_mb=MEMORY_TRIM.rss_mb(), memory_trims_total=MEMORY_TRIM.trims)
        if self._extra:
            snap.update(self._extra())
        status = DiagnosticStatus()
        status.name = f"{self._node.get_fully_qualified_name()}"
        status.hardware_id = "emotion_perception"
        if snap["processing_time_p95_ms"] > self._warn_ms:
            status.level = DiagnosticStatus.WARN
            status.message = f"slow: p95 processing {snap['processing_time_p95_ms']:.1f} ms"
        else:
            status.level = DiagnosticStatus.OK
            status.message = "ok"
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                         for k, v in snap.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self._node.get_clock().now().to_msg()
        arr.status = [status]
        self._pub.publish(arr)


def refuse_oversized(items, topic: str, once: OnceLog, diagnostics: Diagnostics) -> bool:
    """True, logged once and counted as bad input, when an array message holds more
    faces than a landmark node finds (:func:`..conversions.check_face_count`); the
    caller then drops the message instead of working through every face."""
    from ..conversions import ConversionError, check_face_count

    try:
        check_face_count(len(items), f"a message on {topic}")
    except ConversionError as e:
        diagnostics.error()
        once.warn("too_many_faces", str(e))
        return True
    return False


def stamp_ns(header) -> int:
    """A header's stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def image_key(msg) -> tuple[int, int]:
    """Which image one of the package's array messages is about, as a key that also
    orders images: ``(stream_time_ns, image_seq)`` as the landmark node numbered it, or
    ``(header stamp, 0)`` from a publisher that sets no ``image_seq``.

    Images are told apart by it where stamps cannot (a camera that sends stamp 0 or
    repeats stamps: ``image_seq`` differs), and a late frame, stamped up to 1 s before
    its predecessor, keeps its place (its stream time does not go back). The first
    element is image time in ns: use it for durations and staleness.
    """
    if msg.image_seq:
        return int(msg.stream_time_ns), int(msg.image_seq)
    return stamp_ns(msg.header), 0


class StampSync:
    """Pairs messages of several topics that are about the same image.

    ``add(slot, key, msg)`` stores a message under its image's key (:func:`image_key`,
    or a header stamp); when every slot holds one for that key, the tuple is returned
    (in slot order) and the keys that arrived before it are dropped. At most
    ``max_pending`` keys wait, so a topic that stops never grows memory.
    """

    def __init__(self, slots: int, max_pending: int = 30):
        self._slots = slots
        self._max = max_pending
        self._pending: collections.OrderedDict[Any, list] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.unmatched = 0

    def add(self, slot: int, key, msg) -> tuple | None:
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                entry = [None] * self._slots
                self._pending[key] = entry
                while len(self._pending) > self._max:
                    self._pending.popitem(last=False)
                    self.unmatched += 1
            entry[slot] = msg
            if all(e is not None for e in entry):
                for s in list(self._pending):
                    del self._pending[s]
                    if s == key:
                        break
                    self.unmatched += 1
                return tuple(entry)
            return None


#: Threads each native math library (OpenBLAS, OpenMP) may use in a node process.
NATIVE_THREADS = 1


def limit_native_threads(n: int = NATIVE_THREADS) -> None:
    """Cap the BLAS/OpenMP thread pools of the libraries loaded so far at ``n``.

    A node runs tiny per-frame inference (one face, a few ms); a multi-threaded
    OpenBLAS gains nothing there, and its worker threads busy-wait between calls:
    measured on the 2-core machine, ``frame_node`` (scikit-learn SVM) used 84% of a
    core at 10 Hz with the default pools and 3% with one thread, CPU the landmark
    node needs. Call it after the node is built (model libraries are loaded then).

    OpenCV's own pool (pthreads, one thread per core; threadpoolctl does not see it) is
    capped too: the landmark node's crops (a grey conversion, a shrink and a warp of a
    few hundred pixels a side, about 0.1 ms) were split across it, and its thread
    spun after each piece: 0.6 ms of CPU per frame at 30 Hz for that 0.1 ms of work
    (one-process pipeline, per-thread CPU, 2026-12-02).
    """
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it there is nothing to cap
        return
    threadpool_limits(limits=n)


#: glibc's mallopt parameters and the values keep_large_buffers sets, bytes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest: a 4K rgb8 frame (24.9 MB) stays on the heap
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES
#: glibc's own default trim threshold (and mmap threshold), bytes.
_GLIBC_TRIM_THRESHOLD = 128 * 1024
#: The mmap threshold while memory is being given back after a peak, bytes.
_LOWERED_MMAP_THRESHOLD = 256 * 1024
_large_buffers_kept = False  # keep_large_buffers ran in this process


def keep_large_buffers() -> None:
    """Let glibc reuse freed camera-sized buffers instead of mapping fresh pages each time.

    Every image message is copied into new buffers when rclpy takes it (921,600 bytes
    at 640x480, twice). Blocks that large come from mmap and go back on free, so each
    copy touched freshly mapped pages: measured at 30 Hz, the image node's take cost
    1.47 ms of CPU per frame, 0.53 ms with these settings (its process 4.8 -> 3.8 ms per
    frame; benchmarks/profile_nodes.py). With the mmap threshold fixed at 32 MiB such
    blocks come from the heap and are reused; the heap keeps up to 64 MiB free before
    returning memory. Does nothing where glibc's mallopt is not available.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        return
    global _large_buffers_kept
    _large_buffers_kept = True


class MemoryTrim:
    """Gives the heap memory a load peak left free back to the system (glibc's
    ``malloc_trim``) once resident anonymous memory is more than ``grow_ratio`` (and
    ``min_growth_mb``) over the lowest level seen; process-wide, checked by every node's
    diagnostics timer.

    Why: glibc keeps freed memory in its arenas (one per thread that allocated: the
    executor, MediaPipe's workers, Fast DDS's receive threads) and, with the mmap
    threshold raised so that camera-sized buffers are reused (:func:`keep_large_buffers`),
    camera frames come from those arenas too. After bursts of 1080p frames at 120 Hz
    the landmark node kept +200 MB, growing with every burst (benchmarks/memory.py).
    ``malloc_trim(0)`` releases the free pages of every arena. It runs at most every
    ``interval_s`` and only after growth, so a steady stream (whose reused buffers the
    threshold is there to keep) costs nothing.
    After a peak, until memory has been back for ``restore_after_s`` (0: the first check
    that finds it back), the trim and mmap thresholds are glibc's small ones:
    camera-sized buffers are then mapped fresh (page faults: about 1 ms of CPU per frame,
    the cost keep_large_buffers avoids) instead of refilling the holes the peak left.

    Judged on anonymous memory (RssAnon), the part a trim can give back: resident
    memory also counts the transport's shared-memory segment (a 1080p burst touches all
    16 MiB of it for good, 5% of the landmark node) and mapped files, and with them in
    the sum the steady level after a burst sat at the bound and was trimmed every
    ``interval_s``, the thresholds lowered for good.

    Measured (benchmarks/memory.py, four 4 s bursts of 1080p at 120 Hz, then 640x480 at
    5 Hz; docs/benchmarks.md): within 10% of the level before 5-10 s after the last
    burst, -3% to +6% after 60 s, no trim after that; without any trim, +59% and
    growing with every burst. Thirty trims in a row (five minutes) that leave memory
    above the bound make its level the new one: a larger working set (a camera switched
    to 1080p) then costs no trimming and no page faults for good.
    """

    def __init__(self, grow_ratio: float = 1.10, interval_s: float = 10.0, restore_after_s: float = 0.0,
                 min_growth_mb: float = 16.0):
        self.grow_ratio = grow_ratio
        #: Growth below this never counts, MB: the small nodes hold 35-45 MB of anonymous
        #: memory, where 10% is a few camera frames in flight (one 1080p frame is 6 MB).
        self.min_growth_mb = min_growth_mb
        self.interval_s = interval_s
        self.restore_after_s = restore_after_s
        #: Trims in a row that leave memory above the bound before its level is raised.
        self.adopt_after = 30
        self._futile = 0
        self._back_since: float | None = None  # when memory came back within bounds while lowered
        self.trims = 0
        self.freed_mb = 0.0
        self._lock = threading.Lock()
        self._low_mb: float | None = None  # lowest resident memory seen at a check or after a trim
        self._last = -math.inf
        self._trim = self._mallopt = None
        self._lowered = False  # trim threshold at glibc's default until memory is back
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            self._trim, self._mallopt = libc.malloc_trim, libc.mallopt
        except (OSError, AttributeError):  # not glibc: nothing to trim
            pass
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0

    def rss_mb(self) -> float:
        """This process's resident memory, MB (0 where /proc is not there)."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page_mb
        except (OSError, ValueError, IndexError):
            return 0.0

    def anon_mb(self) -> float:
        """This process's resident anonymous memory (heap, thread arenas, mapped
        buffers), MB: what trimming can give back. Resident memory also counts the
        transport's shared-memory segments and mapped files, which no trim changes.
        Falls back to :meth:`rss_mb` where /proc/self/status has no RssAnon."""
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return self.rss_mb()

    def check(self) -> None:
        """Trim when anonymous memory is over :meth:`_bound` of the lowest level seen, at
        most every ``interval_s``, and lower the thresholds until it has been back for
        ``restore_after_s``.

        malloc_trim gives back the free chunks of every arena, but the free top of a
        thread's arena (MediaPipe's workers, Fast DDS's receive threads) only a free()
        in it trims, and only above the trim threshold (64 MiB with
        :func:`keep_large_buffers`): meanwhile glibc's 128 KiB applies. A trim during
        a burst leaves the low level where it was, so what the burst frees is given
        back after it.
        """
        if self._trim is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
            anon = self.anon_mb()
            if self._low_mb is not None and anon > self._bound():
                gc.collect()
                self._trim(0)
                if not self._lowered:
                    self._mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
                    # camera-sized buffers mapped fresh meanwhile, not carved from the
                    # holes the peak left (which the next trim would give back again)
                    self._mallopt(_M_MMAP_THRESHOLD, _LOWERED_MMAP_THRESHOLD)
                    self._lowered = True
                self.trims += 1
                after = self.anon_mb()
                self.freed_mb += max(0.0, anon - after)
                self._back_since = None
                self._futile = self._futile + 1 if after > self._bound() else 0
                if self._futile >= self.adopt_after:
                    # Five minutes of trims that do not bring it back: a larger working set
                    # (the camera now sends 1080p), not a peak. It becomes the level.
                    self._low_mb = after
                    self._restore()
                # The level right after a trim is not the lowest level: the free chunks
                # the next frames reuse were given back too, and the next frames touch
                # them again. Taken as the lowest (after four bursts, 147 MB against a
                # steady 156-164 MB), it put the bound at the steady level, which then
                # was trimmed every interval_s, the thresholds lowered for good.
                return
            if self._lowered:
                # Back within bounds: the thresholds that let camera-sized buffers be
                # reused come back once it has stayed so for restore_after_s.
                self._back_since = self._back_since if self._back_since is not None else now
                if now - self._back_since >= self.restore_after_s:
                    self._restore()
            self._low_mb = anon if self._low_mb is None else min(self._low_mb, anon)

    def _bound(self) -> float:
        """Anonymous memory above which a check trims, MB (lock held, level known)."""
        return max(self._low_mb * self.grow_ratio, self._low_mb + self.min_growth_mb)

    def _restore(self) -> None:
        """The thresholds that let camera-sized buffers be reused, back (lock held)."""
        if self._lowered:
            self._mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES if _large_buffers_kept else _GLIBC_TRIM_THRESHOLD)
            self._mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES if _large_buffers_kept else _GLIBC_TRIM_THRESHOLD)
        self._lowered = False
        self._back_since = None
        self._futile = 0


#: The process's one :class:`MemoryTrim` (every node's :class:`Diagnostics` checks it).
MEMORY_TRIM = MemoryTrim()


class yield_to_middleware_threads:
    """Context manager for tearing down rclpy entities: every thread of this process on
    the calling thread's CPU, and the calling thread at the lowest priority
    (SCHED_IDLE); both restored on exit.

    Why: Fast DDS 3.2 (Kilted) deletes a participant by first waiting, without a
    timeout, until no discovery callback is in flight
    (``DomainParticipant::set_listener(nullptr)`` in ``rmw_destroy_node``). That wait
    does not block: it re-takes the participant's lock in a tight loop, and a
    reception thread whose callback (another node leaving) must take the same lock to
    end was seen to lose that race for good (the node's stop hung until SIGKILL; see
    docs/running.md). On one CPU, with the deleting thread at idle priority, the
    waiting thread runs as soon as the lock is let go, and the loop ends. Outside a
    teardown nothing changes. Does nothing where Linux's scheduling calls are missing.
    """

    def __enter__(self):
        self._affinity: dict[int, set] = {}
        self._policy = None
        try:
            import ctypes

            cpu = ctypes.CDLL(None).sched_getcpu()
            for tid in map(int, os.listdir("/proc/self/task")):
                try:
                    self._affinity[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
                except OSError:  # a thread that ended meanwhile
                    pass
            self._policy = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            pass
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._policy is not None:
                os.sched_setscheduler(0, *self._policy)
            for tid, cpus in self._affinity.items():
                try:
                    os.sched_setaffinity(tid, cpus)
                except OSError:
                    pass
        except (OSError, AttributeError):
            pass


#: Seconds a node's stop may take before it dumps its threads' stacks and exits with 1
#: (``ros2 launch`` sends SIGTERM after 5 s, which a stopping node ignores, and SIGKILL after 15 s).
STOP_WATCHDOG_S = 10.0


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """``main()`` of every node: init, spin, shut down cleanly on Ctrl-C or SIGTERM.

    A node whose constructor raises (bad parameter, missing or tampered model) logs
    one line naming the problem and exits with status 1. Before the first participant
    exists it loads the package's Fast DDS profile (``config/fastdds_shm.xml``, unless
    the user chose a transport or an XML profile; see ``transport.py``), so camera-sized
    images reach a node started alone (``ros2 run``) as they reach the pipeline, and
    removes shared-memory segments that crashed processes left in /dev/shm.

    Signals: rclpy's own handler (installed by ``rclpy.init``) shuts the context down on
    the first SIGINT or SIGTERM, which ends ``spin`` with ExternalShutdownException; the
    node is then destroyed and the process exits with 0 ("process has finished
    cleanly" under ``ros2 launch``). Python itself ignores both signals, from before
    ``rclpy.init`` to exit, because a terminal's Ctrl-C reaches each node twice: from
    the terminal (the whole process group) and again from ``ros2 launch``. With
    Python's default handler the second one raised KeyboardInterrupt inside
    ``destroy_node()`` (a traceback and exit code -2 in every node), and once the
    interpreter is finalising (which restores the default handlers it installed) it
    killed the process (exit code -2 without a traceback). A callback that publishes
    while the context is being shut down raises RCLError ("publisher's context is
    invalid"); that is part of shutting down, not a failure.
    """
    import faulthandler
    import signal

    from .. import quiet, transport
    from .executor import LeanExecutor, spin

    quiet.install()  # MediaPipe/TFLite native log lines off stderr (EMOTION_PERCEPTION_VERBOSE=1 keeps them)
    keep_large_buffers()

    def ignore_signals():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

    ignore_signals()  # rclpy's handler, installed over this, still acts on the first one
    cleaned = transport.prepare_process()
    rclpy.init(args=args)
    context = rclpy.get_default_context()
    # Made at once: an executor made after a signal has shut the context down fails
    # half-built, and its __del__ prints a traceback (spin(node) would make one late).
    executor = LeanExecutor(context=context)
    log = rclpy.logging.get_logger("emotion_perception")
    if cleaned:
        log.info(cleaned)
    node = None
    status = 0
    try:
        node = factory()
        limit_native_threads()
        spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:  # noqa: BLE001 - one clear line instead of a traceback
        if context.ok():
            what = "stopped" if node is not None else "cannot start"
            log.fatal(f"{what}: {type(e).__name__}: {e}")
            status = 1
        # else: a signal shut the context down while the node was starting or a
        # callback was publishing; that is a clean shutdown
    finally:
        # A stop that hangs gets every thread's stack on stderr and exit status 1 after
        # STOP_WATCHDOG_S instead of waiting for launch's SIGKILL: the dump says where.
        # faulthandler's C thread needs no GIL, and it writes to the real stderr, not
        # through quiet's filter thread, which does. Seen: Fast DDS 3.2's participant
        # deletion (rmw_destroy_node) spinning with the GIL held while a discovery
        # callback of another node's departure waits (docs/running.md).
        faulthandler.dump_traceback_later(STOP_WATCHDOG_S, exit=True, file=quiet.real_stderr_fd())
        executor.shutdown(timeout_sec=0)  # spin() did unless the node never started
        with yield_to_middleware_threads():
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()  # uninstalls rclpy's handler, restoring SIG_IGN
        ignore_signals()
    return status


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (at most 15 characters) in the operating system,
    where ``top -H``, ``ps -L`` and /proc show it: Python's thread names stay inside
    Python, so every thread of a node process reads "python" there. The benchmarks use
    it to tell the landmark node's MediaPipe workers from the executor thread when all
    nodes share one process. Does nothing where Linux's prctl is not available.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
