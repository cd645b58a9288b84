"""Eye state per eye (open, closed, narrowed, wide), blinks, blink rate and PERCLOS.

State model (fitted without labels, see ``models/attention.md``):

the posteriors of a four-component Gaussian mixture over (3-D eye aspect ratio,
eyeBlink blendshape of the same eye), fitted on every eye of the shared photos and
videos; its components, ordered by mean aspect ratio, are closed, narrowed, open and
wide. A strong eyeSquint (eyeWide) then moves the "open" mass to narrowed (wide).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math

import numpy as np

from .mixture import Mixture


class EyeState(enum.IntEnum):
    """Same values as ``Attention.EYE_*``."""

    OPEN = 0
    CLOSED = 1
    NARROWED = 2
    WIDE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


@dataclasses.dataclass(frozen=True)
class EyeModel:
    """Fitted eye-state parameters (``eye`` section of the shipped parameters).

    Attributes:
        mixture: four Gaussian components over (3-D eye aspect ratio, eyeBlink).
        components: the component index of each :class:`EyeState` (OPEN, CLOSED,
            NARROWED, WIDE order), assigned by the components' mean aspect ratio
            (lowest closed, then narrowed, open, highest wide).
        squint_blendshape, wide_blendshape: eyeSquint / eyeWide levels (high
            percentiles of the unlabelled data) above which an "open" eye counts as
            narrowed / wide; ``blendshape_softness`` the logistic width.
    """

    mixture: Mixture
    components: tuple[int, int, int, int]
    squint_blendshape: float
    wide_blendshape: float
    blendshape_softness: float

    @classmethod
    def from_dict(cls, d: dict) -> "EyeModel":
        comps = tuple(int(d["components"][s.label]) for s in EyeState)
        if sorted(comps) != list(range(len(comps))) or len(d["mixture"]["weights"]) != 4:
            raise ValueError("eye model needs four mixture components, one per state")
        return cls(Mixture.from_dict(d["mixture"]), comps, float(d["squint_blendshape"]),
                   float(d["wide_blendshape"]), float(d["blendshape_softness"]))

    def probabilities(self, ear: float, blink: float = math.nan, squint: float = math.nan,
                      wide: float = math.nan) -> np.ndarray:
        """(4,) probabilities indexed by :class:`EyeState`; NaN blendshapes are ignored."""
        if math.isfinite(blink):
            post = self.mixture.posteriors((ear, blink))
        else:
            post = self.mixture.posteriors((ear,), dims=(0,))
        p = post[list(self.components)]
        s = self.blendshape_softness
        if math.isfinite(squint):
            moved = p[EyeState.OPEN] * _sigmoid((squint - self.squint_blendshape) / s)
            p[EyeState.OPEN] -= moved
            p[EyeState.NARROWED] += moved
        if math.isfinite(wide):
            moved = p[EyeState.OPEN] * _sigmoid((wide - self.wide_blendshape) / s)
            p[EyeState.OPEN] -= moved
            p[EyeState.WIDE] += moved
        return p


class BlinkDetector:
    """Blink events, blink rate and PERCLOS of one face from per-frame closure.

    Both eyes count as closed while the smaller of their closed probabilities is above
    ``close_above`` (a wink is not a blink), and open again once it falls below
    ``open_below`` (hysteresis against flicker). A closure of at most ``max_blink_s``
    is a blink, counted when the eyes reopen; longer ones are eye closures: they count
    in PERCLOS only.

    Args:
        perclos_window_s: window of PERCLOS and of the blink rate, seconds.
        max_blink_s: longest closure that counts as a blink, seconds.
    """

    def __init__(self, perclos_window_s: float = 60.0, max_blink_s: float = 0.7, close_above: float = 0.5,
                 open_below: float = 0.3):
        if not perclos_window_s > 0:
            raise ValueError("perclos_window_s must be positive")
        self.window_s = float(perclos_window_s)
        self.max_blink_s = float(max_blink_s)
        self.close_above, self.open_below = close_above, open_below
        self._samples: collections.deque[tuple[float, bool]] = collections.deque()
        self._closed_count = 0
        self._blinks: collections.deque[float] = collections.deque()
        self._closed_since: float | None = None
        self._start: float | None = None
        self._last_t: float | None = None
        self.total_blinks = 0

    @property
    def closed(self) -> bool:
        return self._closed_since is not None

    def update(self, t_s: float, p_closed_right: float, p_closed_left: float) -> bool:
        """Feed one frame (time in seconds, increasing); returns True while a blink is in progress.

        A frame older than the previous one is ignored (returns the current state).
        """
        if self._last_t is not None and t_s < self._last_t:
            return self.blinking(self._last_t)
        self._last_t = t_s
        if self._start is None:
            self._start = t_s
        p = min(p_closed_right, p_closed_left)
        if self._closed_since is None and p > self.close_above:
            self._closed_since = t_s
        elif self._closed_since is not None and p < self.open_below:
            if t_s - self._closed_since <= self.max_blink_s:
                self._blinks.append(t_s)
                self.total_blinks += 1
            self._closed_since = None
        closed = self._closed_since is not None
        self._samples.append((t_s, closed))
        self._closed_count += closed
        cut = t_s - self.window_s
        while self._samples and self._samples[0][0] < cut:
            self._closed_count -= self._samples.popleft()[1]
        while self._blinks and self._blinks[0] < cut:
            self._blinks.popleft()
        return self.blinking(t_s)

    def blinking(self, t_s: float) -> bool:
        return self._closed_since is not None and t_s - self._closed_since <= self.max_blink_s

    @property
    def perclos(self) -> float:
        """Fraction of the window's frames with both eyes closed, [0, 1]."""
        return self._closed_count / len(self._samples) if self._samples else 0.0

    @property
    def blink_rate(self) -> float:
        """Blinks per minute over the window (over the time seen, once at least 1 s)."""
        if self._start is None or self._last_t is None:
            return 0.0
        span = max(min(self._last_t - self._start, self.window_s), 1.0)
        return 60.0 * len(self._blinks) / span
