"""Which image a message is about, and pairing the messages of several topics that are
about the same image."""

from __future__ import annotations

import collections
import threading
from typing import Any


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
