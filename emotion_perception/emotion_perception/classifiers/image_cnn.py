"""``image-cnn``: emotion from the face's pixels.

The shipped model (``models/image_cnn.tflite`` + ``image_cnn.json``, card
``models/image-cnn.md``) is a small VGG-style CNN trained here on FER+ (FER-2013 faces
with Microsoft's ten-annotator votes) by ``emotion-perception train image-cnn``.
Its input is the aligned grey face crop of :mod:`emotion_perception.face_crop`, at the
size and margin recorded in the JSON: the same function made its training crops, so
training, the nodes and ``predict``/``evaluate`` all give the model one geometry.
Input (1, S, S, 1) float32 grey levels 0-255; output (1, 7) probabilities in
``EMOTIONS_7`` order (the mirrored crop is averaged in, inside the model). Runs under
LiteRT, no TensorFlow.

Two ways in:

* :meth:`ImageCnn.classify_crop`: a crop made elsewhere (the landmark node's
  ``faces/crops``, ``FrameInput.face_crop``), resized if its size differs;
* :meth:`ImageCnn.classify_face`: a whole image and the face's landmarks.
"""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np

from ..face_crop import aligned_crop
from ..types import EMOTIONS_7, EmotionEstimate
from .base import EmotionModel, FrameInput
from .litert import LiteRTModel

MODEL_FILE = "image_cnn.tflite"
META_FILE = "image_cnn.json"
#: LiteRT threads. Two: on 2026-12-07's 2-core machine one inference took about 5.5 ms
#: of CPU either way, but about 2.9 ms of wall time instead of 5.5
#: (``benchmarks/image_cnn.py``), and the one-process pipeline's `emotion` p50 went from
#: bare MediaPipe + 10.4 to + 9.3 ms, its CPU per image unchanged (one
#: ``benchmarks/latency.py --in-process --final-only --quick`` run with each).
THREADS = 2


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """The crop a model was trained on: side (pixels) and margin (fraction)."""

    size: int
    margin: float


def load_meta(meta_file: str = META_FILE) -> dict:
    """The model's JSON (sha256-verified)."""
    from ..assets import verified_path

    return json.loads(verified_path(meta_file).read_text())


def crop_spec(meta_file: str = META_FILE) -> CropSpec:
    """Crop size and margin of the shipped model (what the landmark node publishes).

    Raises:
        emotion_perception.assets.ModelFileError: the JSON is missing or tampered.
    """
    meta = load_meta(meta_file)
    return CropSpec(int(meta["input_size"]), float(meta["crop_margin"]))


def to_grey(crop: np.ndarray, size: int) -> np.ndarray:
    """A (size, size) uint8 grey crop from any (H, W), (H, W, 1) or (H, W, 3) RGB crop.

    Raises:
        ValueError: not an image, or empty.
    """
    c = np.asarray(crop)
    if c.ndim == 3 and c.shape[2] == 1:
        c = c[:, :, 0]
    if c.size == 0 or c.ndim not in (2, 3) or (c.ndim == 3 and c.shape[2] != 3):
        raise ValueError(f"image-cnn needs an (H, W) grey or (H, W, 3) RGB face crop, got {c.shape}")
    if c.dtype != np.uint8:
        if not np.all(np.isfinite(c)):
            raise ValueError("image-cnn: the face crop holds NaN or infinite values")
        c = np.clip(c, 0, 255).astype(np.uint8)
    if c.ndim == 3:
        c = cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY)
    if c.shape != (size, size):
        interp = cv2.INTER_AREA if min(c.shape) > size else cv2.INTER_LINEAR
        c = cv2.resize(c, (size, size), interpolation=interp)
    return c


class ImageCnn(EmotionModel):
    """The face-image classifier (stateless).

    ``update`` reads ``FrameInput.face_crop``: an aligned crop as made by
    :func:`~emotion_perception.face_crop.aligned_crop` with :attr:`spec` (any size is
    resized, but only the model's geometry matches its training).

    Args:
        model_file: the .tflite (sha256-verified).
        meta_file: its JSON (sha256-verified): classes, crop size and margin.
        num_threads: LiteRT threads.

    Raises:
        emotion_perception.assets.ModelFileError: a file missing or tampered (the
            message names it and the expected sha256).
        ValueError: the files do not describe one model.
    """

    name = "image-cnn"
    class_names = EMOTIONS_7
    needs = frozenset({"face_crop"})

    def __init__(self, model_file: str = MODEL_FILE, meta_file: str = META_FILE, num_threads: int = THREADS):
        meta = load_meta(meta_file)
        self._model = LiteRTModel(model_file, num_threads=num_threads)
        self.spec = CropSpec(int(meta["input_size"]), float(meta["crop_margin"]))
        classes = tuple(meta["class_names"])
        s = self.spec.size
        if self._model.input_shapes[0] != (1, s, s, 1) or self._model.output_shapes[0] != (1, len(classes)):
            raise ValueError(f"{model_file}: shapes {self._model.input_shapes} -> {self._model.output_shapes} "
                             f"do not match {meta_file} (input {s}x{s}x1, {len(classes)} classes)")
        self._order = np.array([classes.index(c) for c in EMOTIONS_7])

    def classify_crop(self, crop: np.ndarray) -> np.ndarray:
        """(7,) probabilities in ``EMOTIONS_7`` order for one aligned face crop."""
        x = to_grey(crop, self.spec.size).astype(np.float32)[:, :, None]
        p = np.asarray(self._model.run(x), dtype=np.float32)[self._order]
        p = np.clip(p, 0.0, None)
        return p / max(float(p.sum()), 1e-12)

    def classify_face(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Probabilities for the face with these (478, 2+) normalised landmarks in ``image``."""
        return self.classify_crop(aligned_crop(image, landmarks, self.spec.size, self.spec.margin))

    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate:
        p = self.classify_crop(frame.face_crop)
        return EmotionEstimate(face_id=face_id, class_names=self.class_names, probabilities=p,
                               model=self.name, frames_used=1, confident=True)

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        crops = arrays.get("face_crop")
        if crops is None:
            raise ValueError("image-cnn needs face crops (predict/evaluate: a folder of photos with labels.csv)")
        return np.stack([self.classify_crop(c) for c in crops])


def load(num_threads: int = THREADS) -> ImageCnn:
    """The shipped ``image-cnn`` (its .tflite and JSON sha256-verified)."""
    return ImageCnn(num_threads=num_threads)
