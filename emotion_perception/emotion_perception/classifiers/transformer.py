"""The landmark sequence transformer (6 classes, no surprise).

Per frame, the 478 :func:`features.landmark_distances` (position- and
size-invariant); a window of frames per face into a small Transformer encoder run
with LiteRT. See ``models/transformer.md`` for data, method, metrics and limits.
"""

from __future__ import annotations

import numpy as np

from ..features import landmark_distances
from .base import FrameInput
from .sequence import SequenceModel

#: Frames before an estimate is confident (about 0.33 s at 30 fps).
MIN_FRAMES = 10
#: EMA time constant of the output probabilities, frames.
SMOOTHING_FRAMES = 10.0


class LandmarkTransformer(SequenceModel):
    """Per-face landmark sequence transformer.

    Args:
        min_frames: frames before an estimate is confident.
        smoothing_frames: EMA time constant of the probabilities, frames (0: off).

    Raises:
        emotion_perception.assets.ModelFileError: missing or tampered model files.
    """

    name = "transformer"
    needs = frozenset({"landmarks", "image_wh"})

    def __init__(self, min_frames: int = MIN_FRAMES, smoothing_frames: float = SMOOTHING_FRAMES):
        super().__init__("transformer.tflite", "transformer.json", min_frames, smoothing_frames)

    def features(self, frame: FrameInput) -> np.ndarray:
        if frame.landmarks is None:
            raise ValueError("transformer needs landmarks")
        return landmark_distances(frame.landmarks, frame.image_wh)


def load(**kwargs) -> LandmarkTransformer:
    """The shipped landmark sequence transformer."""
    return LandmarkTransformer(**kwargs)
