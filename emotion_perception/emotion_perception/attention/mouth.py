"""Mouth state (open or closed) and talking.

* open: posterior of the "open" component of a two-component Gaussian mixture
  (diagonal covariances) over
  (sqrt of the 3-D inner-lip aspect ratio, jawOpen - mouthClose), fitted without labels
  on the shared photos and videos. ``mouthClose`` is MediaPipe's "lips together while
  the jaw is open", so it is subtracted from jawOpen.
* talking (:class:`TalkingDetector`): the mouth opening varies over a short window
  (standard deviation of the aspect ratio over ``window_s`` above a threshold fitted
  on the talking-face video), never from one frame.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math

from .mixture import Mixture


class MouthState(enum.IntEnum):
    """Same values as ``Attention.MOUTH_*``."""

    CLOSED = 0
    OPEN = 1

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclasses.dataclass(frozen=True)
class MouthModel:
    mixture: Mixture
    open_component: int

    @classmethod
    def from_dict(cls, d: dict) -> "MouthModel":
        return cls(Mixture.from_dict(d["mixture"]), int(d["open_component"]))

    def open_probability(self, mar: float, jaw_open: float = math.nan, mouth_close: float = math.nan) -> float:
        """P(open); NaN blendshapes fall back to the aspect ratio alone."""
        x0 = math.sqrt(max(mar, 0.0))
        if math.isfinite(jaw_open):
            return self.mixture.posterior((x0, jaw_open - (mouth_close if math.isfinite(mouth_close) else 0.0)),
                                          self.open_component)
        return self.mixture.posterior((x0,), self.open_component, dims=(0,))


class TalkingDetector:
    """Talking from the mouth's movement over the last ``window_s`` seconds.

    Args:
        std_threshold: standard deviation of the mouth aspect ratio above which the
            mouth moves like speech.
        window_s: window, seconds; at least half of it must be covered by frames.
        min_frames: fewest frames in the window to decide at all.
    """

    def __init__(self, std_threshold: float, window_s: float = 1.0, min_frames: int = 5):
        self.threshold = float(std_threshold)
        self.window_s = float(window_s)
        self.min_frames = int(min_frames)
        self._buf: collections.deque[tuple[float, float]] = collections.deque()
        self._sum = 0.0
        self._sum2 = 0.0

    def update(self, t_s: float, mar: float) -> bool:
        if self._buf and t_s < self._buf[-1][0]:
            return self.talking
        self._buf.append((t_s, mar))
        self._sum += mar
        self._sum2 += mar * mar
        while self._buf and self._buf[0][0] < t_s - self.window_s:
            _, old = self._buf.popleft()
            self._sum -= old
            self._sum2 -= old * old
        return self.talking

    @property
    def movement(self) -> float:
        """Standard deviation of the aspect ratio over the window (NaN when too few frames)."""
        n = len(self._buf)
        if n < self.min_frames or self._buf[-1][0] - self._buf[0][0] < 0.5 * self.window_s:
            return math.nan
        mean = self._sum / n
        return math.sqrt(max(self._sum2 / n - mean * mean, 0.0))

    @property
    def talking(self) -> bool:
        m = self.movement
        return math.isfinite(m) and m > self.threshold
