"""``gnn-landmarks``: a graph convolutional network over the face mesh, under LiteRT.

Input (1, 478, 2): :func:`features.normalised_xy` of the landmarks; output (1, 7)
softmax in ``EMOTIONS_7`` order; the mesh adjacency is a constant inside the model.
Training: :mod:`emotion_perception.training.gnn`; see ``models/gnn-landmarks.md``
for how it compares with svm-landmarks.
"""

from __future__ import annotations

import json

import numpy as np

from ..assets import verified_path
from ..features import normalised_xy
from ..types import EMOTIONS_7, NUM_LANDMARKS, EmotionEstimate
from .base import EmotionModel, FrameInput
from .litert import LiteRTModel


class GnnLandmarks(EmotionModel):
    name = "gnn-landmarks"
    class_names = EMOTIONS_7
    needs = frozenset({"landmarks", "image_wh"})

    def __init__(self, model_file: str = "gnn_landmarks.tflite", meta_file: str = "gnn_landmarks.json"):
        with open(verified_path(meta_file)) as f:
            self.meta = json.load(f)
        if tuple(self.meta["class_names"]) != EMOTIONS_7:
            raise ValueError(f"{meta_file}: classes {self.meta['class_names']} are not {EMOTIONS_7}")
        self._model = LiteRTModel(model_file)

    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate:
        if frame.landmarks is None or np.shape(frame.landmarks) != (NUM_LANDMARKS, 3):
            raise ValueError("gnn-landmarks needs (478, 3) landmarks")
        p = np.asarray(self._model.run(normalised_xy(frame.landmarks, frame.image_wh)), dtype=np.float32)
        return EmotionEstimate(face_id=face_id, class_names=EMOTIONS_7, probabilities=p / p.sum(), model=self.name)

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        x = normalised_xy(arrays["landmarks"], arrays.get("image_wh", np.ones((len(arrays["landmarks"]), 2))))
        out = np.stack([np.asarray(self._model.run(v), dtype=np.float32) for v in x])
        return out / out.sum(1, keepdims=True)


def load() -> GnnLandmarks:
    """The shipped ``gnn-landmarks`` (sha256-verified)."""
    return GnnLandmarks()
