"""Per-face frame buffers in front of a batch-1 LiteRT sequence model.

Shared by the blendshape LSTM and the landmark transformer. Each face keeps its own
ring buffer of feature vectors; every update runs the model on the newest
``window`` frames (taken every ``stride`` frames), the buffer left-padded by
repeating its oldest frame while it is still filling, so the model answers from the
first frame on (the training clips include such steady stretches). Estimates are
``confident=False`` until ``min_frames`` frames are in the buffer.

Horizontal-flip test-time augmentation (``flip_average``): when the metadata names
the feature permutation of a mirrored face (``flip``), each clip is classified as it
is and mirrored and the probabilities averaged (the models were trained with flips).

Output stability: the probabilities are smoothed per face by an exponential moving
average with time constant ``smoothing_frames`` (0 = off) before the label is
taken; the model cards give the measured flicker rate and delay.
"""

from __future__ import annotations

import collections
import json
import threading

import numpy as np

from ..assets import verified_path
from ..types import EmotionEstimate
from .base import EmotionModel, FrameInput
from .litert import LiteRTModel


class SequenceModel(EmotionModel):
    """Base of the LiteRT sequence models.

    Subclasses set ``name``, ``needs`` and implement :meth:`features`.

    Args:
        tflite: model file name (sha256-verified).
        meta: JSON file beside it: ``class_names``, ``window``, ``mean``, ``std`` and
            optionally ``stride``.
        min_frames: frames a face needs before an estimate is confident.
        smoothing_frames: EMA time constant of the probabilities, frames (0: off).
        flip_average: average each clip's probabilities with its mirror's (doubles
            the cost; needs ``flip`` in the metadata).
    """

    def __init__(self, tflite: str, meta: str, min_frames: int, smoothing_frames: float = 0.0,
                 flip_average: bool = True):
        self.meta = json.loads(verified_path(meta).read_text())
        self.class_names = tuple(self.meta["class_names"])
        self.window = int(self.meta["window"])
        self.stride = int(self.meta.get("stride", 1))
        self.mean = np.asarray(self.meta["mean"], dtype=np.float32)
        self.std = np.asarray(self.meta["std"], dtype=np.float32)
        flip = self.meta.get("flip")
        #: Column permutation of a horizontally mirrored face; when the metadata gives
        #: one, every clip is classified as it is and mirrored, and the two averaged.
        self.flip = np.asarray(flip, dtype=np.int64) if flip is not None and flip_average else None
        self.model = LiteRTModel(tflite)
        expected = (1, self.window, len(self.mean))
        if self.model.input_shapes[0] != expected:
            raise ValueError(f"{tflite} takes {self.model.input_shapes[0]}, its metadata says {expected}")
        if self.model.output_shapes[0] != (1, len(self.class_names)):
            raise ValueError(f"{tflite} gives {self.model.output_shapes[0]}, expected {len(self.class_names)} classes")
        self.min_frames = int(min_frames)
        self.smoothing_frames = float(smoothing_frames)
        self.span = (self.window - 1) * self.stride + 1
        self._buffers: dict[str, collections.deque] = {}
        self._counts: dict[str, int] = {}
        self._smoothed: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def features(self, frame: FrameInput) -> np.ndarray:
        """The model's feature vector of one frame (raises ValueError on bad input)."""
        raise NotImplementedError

    def _clip(self, buf: collections.deque) -> np.ndarray:
        frames = list(buf)[::-1][::self.stride][::-1]  # newest frame always included
        if len(frames) < self.window:
            frames = [frames[0]] * (self.window - len(frames)) + frames
        return np.stack(frames)

    def _infer(self, clip: np.ndarray) -> np.ndarray:
        """Probabilities of one raw (window, F) clip (mirror-averaged if ``flip``)."""
        p = np.asarray(self.model.run((clip - self.mean) / self.std), dtype=np.float32)
        if self.flip is not None:
            p = 0.5 * (p + np.asarray(self.model.run((clip[:, self.flip] - self.mean) / self.std), np.float32))
        return p

    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate:
        x = self.features(frame)
        with self._lock:
            buf = self._buffers.get(face_id)
            if buf is None:
                buf = self._buffers[face_id] = collections.deque(maxlen=self.span)
                self._counts[face_id] = 0
            buf.append(x)
            self._counts[face_id] += 1
            clip = self._clip(buf)
            n = self._counts[face_id]
        p = self._infer(clip)
        with self._lock:
            if self.smoothing_frames > 0 and face_id in self._smoothed:
                a = 1.0 / (1.0 + self.smoothing_frames)
                p = (1 - a) * self._smoothed[face_id] + a * p
            self._smoothed[face_id] = p
        p = p / p.sum()
        return EmotionEstimate(face_id=face_id, class_names=self.class_names, probabilities=p, model=self.name,
                               frames_used=min(n, self.span), confident=n >= self.min_frames)

    def forget(self, face_id: str) -> None:
        with self._lock:
            self._buffers.pop(face_id, None)
            self._counts.pop(face_id, None)
            self._smoothed.pop(face_id, None)

    def reset(self) -> None:
        with self._lock:
            self._buffers.clear()
            self._counts.clear()
            self._smoothed.clear()

    def faces(self) -> list[str]:
        """Ids of the faces with a buffer."""
        with self._lock:
            return list(self._buffers)

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        """Each row as a one-frame (constant) clip: the same as a fresh face's first update."""
        keys = [k for k in ("landmarks", "blendshapes") if k in arrays and k in self.needs]
        n = len(arrays[keys[0]])
        out = np.zeros((n, len(self.class_names)), dtype=np.float32)
        for i in range(n):
            frame = FrameInput(
                landmarks=arrays["landmarks"][i] if "landmarks" in arrays else None,
                blendshapes=arrays["blendshapes"][i] if "blendshapes" in arrays else None,
                image_wh=tuple(int(v) for v in arrays["image_wh"][i]) if "image_wh" in arrays else (1, 1))
            x = self.features(frame)
            out[i] = self._infer(np.repeat(x[None], self.window, axis=0))
        return out
