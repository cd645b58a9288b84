"""The blendshape LSTM: 7-class (``lstm``) and 3-class (``lstm-3class``) heads.

Four stacked LSTM layers over a window of MediaPipe blendshape vectors (the subset
kept by the reference's selection rule, recorded in ``lstm.json``), run with LiteRT.
See ``models/lstm.md`` for data, method, metrics and limits.
"""

from __future__ import annotations

import numpy as np

from ..types import NUM_BLENDSHAPES
from .base import FrameInput
from .sequence import SequenceModel

#: Frames before an estimate is confident (about 0.25 s at 30 fps).
MIN_FRAMES = 8
#: Flip averaging costs a second LiteRT call (0.43 ms) for +0.003 RAF-DB accuracy;
#: off to stay inside the 1 ms per update budget.
FLIP_AVERAGE = False
#: EMA time constant of the output probabilities, frames.
SMOOTHING_FRAMES = 10.0


class BlendshapeLstm(SequenceModel):
    """Per-face blendshape LSTM.

    Args:
        three_class: the 3-class head (happy, sad, unknown) instead of the 7-class one.
        min_frames: frames before an estimate is confident.
        smoothing_frames: EMA time constant of the probabilities, frames (0: off).

    Raises:
        emotion_perception.assets.ModelFileError: missing or tampered model files.
    """

    needs = frozenset({"blendshapes"})

    def __init__(self, three_class: bool = False, min_frames: int = MIN_FRAMES,
                 smoothing_frames: float = SMOOTHING_FRAMES):
        stem = "lstm_3class" if three_class else "lstm"
        self.name = "lstm-3class" if three_class else "lstm"
        super().__init__(f"{stem}.tflite", f"{stem}.json", min_frames, smoothing_frames, FLIP_AVERAGE)
        self.indices = np.asarray(self.meta["blendshape_indices"], dtype=np.int64)

    def features(self, frame: FrameInput) -> np.ndarray:
        b = frame.blendshapes
        if b is None:
            raise ValueError(f"{self.name} needs blendshapes")
        b = np.asarray(b, dtype=np.float32)
        if b.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"blendshapes must be ({NUM_BLENDSHAPES},), got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError("blendshapes hold NaN or infinite values")
        return b[self.indices]


def load(**kwargs) -> BlendshapeLstm:
    """The shipped 7-class blendshape LSTM."""
    return BlendshapeLstm(three_class=False, **kwargs)


def load_3class(**kwargs) -> BlendshapeLstm:
    """The shipped 3-class (happy, sad, unknown) blendshape LSTM."""
    return BlendshapeLstm(three_class=True, **kwargs)
