"""glibc's heap in a node process: camera-sized buffers reused, and what a load peak
left free given back (:class:`MemoryTrim`)."""

from __future__ import annotations

import gc
import math
import os
import threading
import time


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
