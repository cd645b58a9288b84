"""The one shape every emotion model has.

A model keeps per-face state (sequence models buffer frames; frame models keep
none) and answers an :class:`~emotion_perception.types.EmotionEstimate` per update.
Nodes, the ``predict``/``evaluate`` CLI and the offline runner all drive models
through this interface only.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ..types import EmotionEstimate


@dataclasses.dataclass(frozen=True)
class FrameInput:
    """What one frame offers a model for one face; a model reads what it needs.

    Attributes:
        landmarks: (478, 3) float32, MediaPipe normalised coordinates, or None.
        blendshapes: (52,) float32, or None.
        image_wh: (width, height) pixels of the source image (landmark geometry on
            non-square images needs it).
        stamp_ns: the image stamp, integer nanoseconds.
        face_crop: the face's image crop (H, W, 3) uint8 RGB, or None.
    """

    landmarks: np.ndarray | None = None
    blendshapes: np.ndarray | None = None
    image_wh: tuple[int, int] = (1, 1)
    stamp_ns: int = 0
    face_crop: np.ndarray | None = None


class EmotionModel(abc.ABC):
    """Base of every emotion model.

    Attributes:
        name: public model name (see ``classifiers.MODELS``).
        class_names: the classes of its probabilities.
        needs: the FrameInput fields it reads, e.g. ``{"blendshapes"}``.
    """

    name: str
    class_names: tuple[str, ...]
    needs: frozenset[str]

    @abc.abstractmethod
    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate | None:
        """Add one frame of ``face_id`` and return the current estimate.

        Returns None only when the model cannot answer yet. Raises ValueError for
        input of the wrong shape or with NaN values.
        """

    def forget(self, face_id: str) -> None:
        """Drop every state kept for ``face_id`` (the face left)."""

    def reset(self) -> None:
        """Drop the state of every face."""

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        """Classify each row of a frame-layout batch independently.

        Keyword arrays are those of the frame layout (``landmarks`` (N,478,3),
        ``blendshapes`` (N,52), ``image_wh`` (N,2)). Returns (N, C) probabilities.
        The default feeds each row as a one-frame sequence of a fresh face.
        """
        n = len(next(iter(arrays.values())))
        out = np.zeros((n, len(self.class_names)), dtype=np.float32)
        for i in range(n):
            frame = FrameInput(
                landmarks=arrays["landmarks"][i] if "landmarks" in arrays else None,
                blendshapes=arrays["blendshapes"][i] if "blendshapes" in arrays else None,
                image_wh=tuple(int(v) for v in arrays["image_wh"][i]) if "image_wh" in arrays else (1, 1))
            est = self.update("__batch__", frame)
            self.forget("__batch__")
            out[i] = est.probabilities
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.reset()
