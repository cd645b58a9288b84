"""The latest per-face emotion and attention, with staleness, as plain data (no ROS).

Each ``EmotionArray`` / ``AttentionArray`` describes every face of one image, so an
update replaces the faces of that topic: a face missing from the newest message is
gone. When a topic has been silent for longer than ``stale_after_s`` its data is
dropped, so a tree never acts on what a dead or stalled pipeline said long ago
("nobody is there" then holds). Times are seconds of a monotonic clock that the
caller passes (``time.monotonic()`` by default), so tests can drive them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Mapping

#: Data older than this is ignored, s.
DEFAULT_STALE_AFTER_S = 1.0
#: Probability of looking at the camera above which someone "looks at the robot".
DEFAULT_LOOKING_MIN = 0.5


@dataclasses.dataclass(frozen=True)
class FaceView:
    """What the tree knows about one face.

    ``emotion`` holds label, confidence, confident, probabilities (class -> p) or is
    None; ``attention`` holds the Attention fields (looking_at_camera, talking,
    drowsy, attentive, mouth_state, ...) or is None.
    """

    face_id: str
    emotion: Mapping | None = None
    attention: Mapping | None = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Fresh faces at one instant; the questions behaviours ask."""

    faces: tuple[FaceView, ...]
    time_s: float

    def ids(self) -> list[str]:
        return [f.face_id for f in self.faces]

    def nobody(self) -> bool:
        """No fresh face (none seen, or the data went stale)."""
        return not self.faces

    def feeling(self, emotion: str, min_confidence: float = 0.5, require_confident: bool = True) -> list[str]:
        """Ids of faces whose emotion is ``emotion`` with probability >= ``min_confidence``.

        The probability of ``emotion`` is used even when it is not the winning label,
        so "angry above 0.4" holds for an angry-neutral mix. With
        ``require_confident`` the estimate's own ``confident`` flag must be set.
        """
        out = []
        for f in self.faces:
            e = f.emotion
            if not e or (require_confident and not e.get("confident", False)):
                continue
            p = (e.get("probabilities") or {}).get(emotion)
            if p is None and e.get("label") == emotion:
                p = e.get("confidence", 0.0)
            if p is not None and p >= min_confidence:
                out.append(f.face_id)
        return out

    def looking(self, min_probability: float = DEFAULT_LOOKING_MIN) -> list[str]:
        return [f.face_id for f in self.faces
                if f.attention and (f.attention.get("looking_at_camera") or 0.0) >= min_probability]

    def _flag(self, name: str) -> list[str]:
        return [f.face_id for f in self.faces if f.attention and f.attention.get(name)]

    def talking(self) -> list[str]:
        return self._flag("talking")

    def drowsy(self) -> list[str]:
        return self._flag("drowsy")

    def attentive(self) -> list[str]:
        return self._flag("attentive")

    def face(self, face_id: str) -> FaceView | None:
        return next((f for f in self.faces if f.face_id == face_id), None)


class PerceptionState:
    """Thread-safe store of the newest emotion and attention messages' contents.

    Args:
        stale_after_s: data of a topic older than this (by the clock) is dropped.
        clock: monotonic seconds (default ``time.monotonic``).
    """

    def __init__(self, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic):
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0, got {stale_after_s}")
        self.stale_after_s = stale_after_s
        self.clock = clock
        self._lock = threading.Lock()
        self._emotion: dict[str, Mapping] = {}
        self._attention: dict[str, Mapping] = {}
        self._present: dict[str, Mapping] = {}
        self._emotion_t: float | None = None
        self._attention_t: float | None = None
        self._present_t: float | None = None
        self.last_stamp_ns = {"emotion": None, "attention": None, "faces": None}

    def update_faces(self, face_ids, stamp_ns: int | None = None) -> None:
        """The faces found in the newest image (``faces/mesh``), whatever the classifiers say."""
        with self._lock:
            self._present = {i: {} for i in face_ids}
            self._present_t = self.clock()
            self.last_stamp_ns["faces"] = stamp_ns

    def update_emotions(self, faces: Mapping[str, Mapping], stamp_ns: int | None = None) -> None:
        """The emotion of every face in the newest image (face id -> estimate dict)."""
        with self._lock:
            self._emotion = dict(faces)
            self._emotion_t = self.clock()
            self.last_stamp_ns["emotion"] = stamp_ns

    def update_attention(self, faces: Mapping[str, Mapping], stamp_ns: int | None = None) -> None:
        """The attention of every face in the newest image (face id -> fields dict)."""
        with self._lock:
            self._attention = dict(faces)
            self._attention_t = self.clock()
            self.last_stamp_ns["attention"] = stamp_ns

    def snapshot(self) -> Snapshot:
        """Fresh faces now: the union of the faces of each non-stale topic."""
        now = self.clock()
        with self._lock:
            em = self._emotion if self._emotion_t is not None and now - self._emotion_t <= self.stale_after_s else {}
            at = (self._attention if self._attention_t is not None
                  and now - self._attention_t <= self.stale_after_s else {})
            pr = self._present if self._present_t is not None and now - self._present_t <= self.stale_after_s else {}
            ids = sorted(set(em) | set(at) | set(pr))
            return Snapshot(faces=tuple(FaceView(i, em.get(i), at.get(i)) for i in ids), time_s=now)
