"""Messages a subscription never took, from the gaps in the publishers' sequence numbers.

DDS numbers every sample a writer sends (``publication_sequence_number`` in rclpy's
message info). A gap between two samples one reader took from the same writer is
samples that reader never got: lost in transport (best effort), or replaced in the
reader's keep-last queue before anyone took them (the node fell behind). Neither DDS
nor rclpy reports the second: a keep-last queue drops its oldest sample silently.

Kilted's rclpy gives the writer's GUID (``publisher_gid``), so several writers on one
topic are told apart. Jazzy's does not: there a gap counts only while the
subscription has exactly one publisher (the numbers of several writers interleave).
"""

from __future__ import annotations

import collections
from typing import Callable

#: Writers remembered per subscription (the oldest forgotten first).
MAX_TRACKED_PUBLISHERS = 8


class SequenceGaps:
    """The gaps in one subscription's publication sequence numbers."""

    def __init__(self) -> None:
        self._last: collections.OrderedDict = collections.OrderedDict()  # writer (gid, or None) -> last seq

    def count(self, info: dict | None, publishers: Callable[[], int] | None = None) -> int | None:
        """Samples missed before the one whose message info is ``info``: 0 if none, None if
        the info has no sequence number. ``publishers`` (the subscription's publisher
        count) is asked only for a gap without a writer GUID."""
        seq = info.get("publication_sequence_number") if info else None
        if seq is None:
            return None
        writer = (info.get("publisher_gid") or {}).get("data")
        last = self._last.get(writer)
        self._last[writer] = seq
        self._last.move_to_end(writer)
        while len(self._last) > MAX_TRACKED_PUBLISHERS:
            self._last.popitem(last=False)
        if last is None or seq <= last + 1:
            return 0
        if writer is None and publishers is not None and publishers() != 1:
            return 0  # Jazzy, several writers: their numbers interleave
        return seq - last - 1

    def reset(self) -> None:
        """Forget every writer (the subscription was not taken from for a while, on purpose)."""
        self._last.clear()
