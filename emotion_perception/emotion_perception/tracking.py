"""Stable face ids across frames (no rclpy here).

MediaPipe's Face Landmarker returns the faces of each frame as an unordered list, so
the order of two faces can swap between frames. Everything downstream (sequence
models, blink rates, the fusion) keys its state by ``face_id``, so the id must stay
with the person while the face stays in view, and a face that leaves and comes back
must get a new id (its old state no longer applies). :class:`FaceTracker` matches
each frame's boxes to the live tracks by box overlap (IoU), falling back on centroid
distance for fast motion, with an optimal one-to-one assignment (Hungarian method,
``scipy.optimize.linear_sum_assignment``). A track not seen for more than
``max_missed_frames`` processed frames or ``max_gap_s`` seconds of image time ends;
ids count up (``face_1``, ``face_2``, ...) and are never reused.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

# At import, not at the first match: importing scipy.optimize takes ~0.25 s, which in
# a landmark node process stalled the first frame whose face met a live track.
from scipy.optimize import linear_sum_assignment

from .types import BoundingBox

#: Cost given to a pair that may not be matched (any value above every real cost).
_FORBIDDEN = 1e6


@dataclasses.dataclass(frozen=True)
class TrackerOptions:
    """How faces are associated across frames.

    Attributes:
        max_gap_s: a track unseen for longer than this (image time, seconds) ends.
        max_missed_frames: a track unmatched in more than this many consecutive
            processed frames ends (0: a face must be found in every frame).
        min_iou: boxes overlapping at least this much (intersection over union,
            [0, 1]) may match.
        max_centroid_distance: boxes whose centres lie closer than this, in units of
            the track box's size (sqrt of its area), may match even without overlap.
    """

    max_gap_s: float = 1.0
    max_missed_frames: int = 10
    min_iou: float = 0.1
    max_centroid_distance: float = 0.5

    def __post_init__(self):
        if not self.max_gap_s >= 0:
            raise ValueError(f"max_gap_s={self.max_gap_s} must be >= 0")
        if self.max_missed_frames < 0:
            raise ValueError(f"max_missed_frames={self.max_missed_frames} must be >= 0")
        if not 0.0 <= self.min_iou <= 1.0:
            raise ValueError(f"min_iou={self.min_iou} must be in [0, 1]")
        if not self.max_centroid_distance >= 0:
            raise ValueError(f"max_centroid_distance={self.max_centroid_distance} must be >= 0")


@dataclasses.dataclass
class _Track:
    face_id: str
    box: BoundingBox
    last_seen_ns: int
    missed: int = 0


def iou(a: BoundingBox, b: BoundingBox) -> float:
    """Intersection over union of two pixel boxes, [0, 1]."""
    ix = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _centroid_distance(track: BoundingBox, det: BoundingBox) -> float:
    """Distance of the box centres in units of the track box's size."""
    dx = (track.x + track.width / 2) - (det.x + det.width / 2)
    dy = (track.y + track.height / 2) - (det.y + det.height / 2)
    size = math.sqrt(max(track.width * track.height, 1))
    return math.hypot(dx, dy) / size


class FaceTracker:
    """Gives each face box a stable id across frames.

    Example::

        tracker = FaceTracker()
        ids = tracker.update([box_a, box_b], stamp_ns)   # ["face_1", "face_2"]

    Args:
        options: association rules.
        prefix: ids are ``f"{prefix}{n}"``.
    """

    def __init__(self, options: TrackerOptions | None = None, prefix: str = "face_"):
        self.options = options or TrackerOptions()
        self._prefix = prefix
        self._next = 1
        self._tracks: list[_Track] = []

    @property
    def active_ids(self) -> list[str]:
        """Ids of the tracks alive now."""
        return [t.face_id for t in self._tracks]

    @property
    def ids_issued(self) -> int:
        """How many ids were handed out so far."""
        return self._next - 1

    def reset(self) -> None:
        """End every track (e.g. when image time jumps back); ids keep counting."""
        self._tracks = []

    def update(self, boxes: Sequence[BoundingBox], stamp_ns: int) -> list[str]:
        """Associate this frame's boxes with the tracks.

        Args:
            boxes: the faces of one frame, pixel boxes.
            stamp_ns: the frame's time, nanoseconds; expected not to decrease (a
                decrease ends every track, as :meth:`reset`).

        Returns:
            One id per box, in the order of ``boxes``.
        """
        opts = self.options
        if any(stamp_ns < t.last_seen_ns for t in self._tracks):
            self.reset()
        # End tracks that are too old before matching, so a returning face is new.
        max_gap_ns = int(opts.max_gap_s * 1e9)
        self._tracks = [t for t in self._tracks if stamp_ns - t.last_seen_ns <= max_gap_ns]
        ids: list[str | None] = [None] * len(boxes)
        matched_tracks: set[int] = set()
        if self._tracks and boxes:
            cost = np.full((len(self._tracks), len(boxes)), _FORBIDDEN)
            for i, t in enumerate(self._tracks):
                for j, b in enumerate(boxes):
                    overlap = iou(t.box, b)
                    dist = _centroid_distance(t.box, b)
                    if overlap >= opts.min_iou or dist <= opts.max_centroid_distance:
                        # Overlap dominates; distance breaks ties between overlapping boxes.
                        cost[i, j] = (1.0 - overlap) + 0.1 * dist
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] >= _FORBIDDEN:
                    continue
                t = self._tracks[i]
                t.box, t.last_seen_ns, t.missed = boxes[j], stamp_ns, 0
                ids[j] = t.face_id
                matched_tracks.add(i)
        survivors = []
        for i, t in enumerate(self._tracks):
            if i not in matched_tracks:
                t.missed += 1
                if t.missed > opts.max_missed_frames:
                    continue
            survivors.append(t)
        self._tracks = survivors
        for j, b in enumerate(boxes):
            if ids[j] is None:
                t = _Track(f"{self._prefix}{self._next}", b, stamp_ns)
                self._next += 1
                self._tracks.append(t)
                ids[j] = t.face_id
        return ids  # type: ignore[return-value]
