"""Core result types shared by the landmarker, the classifiers and the nodes.

Plain dataclasses over numpy arrays: no rclpy here. ``conversions.py`` is the one
place where they meet ROS messages.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

NUM_LANDMARKS = 478
NUM_BLENDSHAPES = 52
#: Most faces a landmark node finds in one image (the upper bound of its ``max_faces``);
#: an array message of more faces is refused by every node that reads one.
MAX_FACES_LIMIT = 10

#: The seven basic classes, in the order every 7-class model and the fusion use.
EMOTIONS_7 = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
#: The six classes of the landmark sequence transformer (no surprise).
EMOTIONS_6 = ("angry", "disgust", "fear", "happy", "neutral", "sad")
#: The three classes of the reference blendshape LSTM.
EMOTIONS_3 = ("happy", "sad", "unknown")

#: MediaPipe's 52 blendshape categories, in MediaPipe's order.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)

Blendshape = enum.IntEnum("Blendshape", {n.lstrip("_"): i for i, n in enumerate(BLENDSHAPE_NAMES)})
Blendshape.__doc__ = "Index of each blendshape in a 52-vector, e.g. ``Blendshape.jawOpen``."


@dataclasses.dataclass(frozen=True)
class BoundingBox:
    """Axis-aligned face box in pixels, clipped to the image."""

    x: int
    y: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class Face:
    """One tracked face in one image.

    Attributes:
        face_id: stable while tracked (``face_<n>``); never reused.
        landmarks: (478, 3) float32; x, y normalised to image width/height, z as
            MediaPipe gives it (image-width units, relative to the head centre).
        blendshapes: (52,) float32 scores in [0, 1], MediaPipe order.
        transform: (4, 4) float32 facial transformation matrix (cm translation).
        bbox: pixel box of the landmarks.
        score: fraction of landmarks inside the image, [0, 1].
        image_wh: (width, height) of the source image, pixels.
    """

    face_id: str
    landmarks: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    bbox: BoundingBox
    score: float
    image_wh: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class EmotionEstimate:
    """One model's (or the fusion's) emotion estimate for one face.

    Attributes:
        face_id: the face it belongs to.
        class_names: every class the model knows.
        probabilities: same order as ``class_names``, summing to 1.
        model: the producing model's name (``transformer``, ``lstm``, ``fused``, ...).
        frames_used: frames of this face the estimate rests on.
        confident: False while warming up or when the evidence is weak.
        valence, arousal: in [-1, 1], NaN when not given.
    """

    face_id: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    model: str
    frames_used: int = 1
    confident: bool = True
    valence: float = float("nan")
    arousal: float = float("nan")

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))
