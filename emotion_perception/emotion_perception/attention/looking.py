"""Looking at the camera: a probability from gaze and head pose, with hysteresis.

The angle between the gaze direction and the direction from the eyes to the camera
(both in the camera optical frame; the eyes' direction comes from their place in the
image and the field of view) goes through a logistic: 0.5 at ``threshold_deg``, fitted
on portraits that mostly look at the camera (see ``models/attention.md``). The
boolean state switches on above ``on`` and off below ``off`` so it does not flicker.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LookingModel:
    threshold_deg: float
    softness_deg: float

    @classmethod
    def from_dict(cls, d: dict) -> "LookingModel":
        return cls(float(d["threshold_deg"]), float(d["softness_deg"]))

    @staticmethod
    def angle_deg(gaze: np.ndarray, eye_uv: tuple[float, float], f: tuple[float, float]) -> float:
        """Angle between the gaze and the direction from the eyes to the camera, degrees."""
        to_cam = -np.array([(eye_uv[0] - 0.5) / f[0], (eye_uv[1] - 0.5) / f[1], 1.0])
        c = float(gaze @ to_cam) / (np.linalg.norm(gaze) * np.linalg.norm(to_cam))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))

    def probability(self, angle_deg: float) -> float:
        z = (self.threshold_deg - angle_deg) / self.softness_deg
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


class Hysteresis:
    """A boolean that turns on above ``on`` and off below ``off``."""

    def __init__(self, on: float = 0.6, off: float = 0.4):
        if not 0.0 <= off <= on <= 1.0:
            raise ValueError(f"hysteresis needs 0 <= off ({off}) <= on ({on}) <= 1")
        self.on, self.off = on, off
        self.state: bool | None = None

    def update(self, p: float) -> bool:
        if self.state is None:
            self.state = p > 0.5
        elif self.state and p < self.off:
            self.state = False
        elif not self.state and p > self.on:
            self.state = True
        return self.state
