"""Frame classifiers: one face, one image, no memory.

``svm-landmarks``: the published MediaPipe-mesh study's best model, an RBF SVM over
:func:`features.landmark_distances` (distance of every landmark to the nose tip in
inter-ocular distances) after PCA to 50 components and standardisation.
``svm-blendshapes``: an RBF SVM over the 52 MediaPipe blendshapes.

Each model is two files in the models directory, both sha256-verified: a skops
file holding the fitted scikit-learn pipeline (loaded with an explicit list of
trusted types, never pickle), and a JSON file naming its classes, its features and
the held-out metrics it reached (its model card quotes them). Training:
``emotion_perception.training.frame`` (command in the model cards).
"""

from __future__ import annotations

import json

import numpy as np

from ..assets import verified_path
from ..features import landmark_distances
from ..types import EMOTIONS_7, NUM_BLENDSHAPES, NUM_LANDMARKS, EmotionEstimate
from .base import EmotionModel, FrameInput

#: The scikit-learn / numpy types a shipped frame model may contain; anything else
#: in a skops file is refused.
TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.decomposition._pca.PCA",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.svm._classes.SVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.float64",
    "numpy.int64",
    "numpy.int32",
    "numpy.float32",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.sqrt",
    "builtins.slice",
]


def load_skops(name: str):
    """Load a verified skops file trusting only :data:`TRUSTED_TYPES`.

    Raises:
        ModelFileError: missing or tampered file.
        ValueError: the file holds a type outside the trusted list.
    """
    import skops.io as sio

    path = verified_path(name)
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ValueError(f"{path.name} holds types that are not trusted: {', '.join(untrusted)}")
    return sio.load(path, trusted=TRUSTED_TYPES)


def load_meta(name: str) -> dict:
    with open(verified_path(name)) as f:
        return json.load(f)


def featurize(meta: dict, landmarks=None, blendshapes=None, image_wh=None) -> np.ndarray:
    """(N, D) feature rows for a batch, as the model's metadata says.

    Raises:
        ValueError: the needed input is missing, of the wrong shape or not finite.
    """
    kind = meta["features"]
    if kind == "landmark_distances":
        if landmarks is None:
            raise ValueError("this model needs landmarks")
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.ndim == 2:
            lm = lm[None]
        wh = np.ones((len(lm), 2), np.float32) if image_wh is None else np.asarray(image_wh, np.float32)
        if wh.ndim == 1:
            wh = np.broadcast_to(wh, (len(lm), 2))
        return landmark_distances(lm, wh, reference=int(meta.get("reference", 1)),
                                  use_z=bool(meta.get("use_z", True)))
    if kind == "blendshapes":
        if blendshapes is None:
            raise ValueError("this model needs blendshapes")
        b = np.asarray(blendshapes, dtype=np.float32)
        if b.ndim == 1:
            b = b[None]
        if b.shape[1:] != (NUM_BLENDSHAPES,):
            raise ValueError(f"blendshapes must be (52,) or (N, 52), got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise ValueError("blendshapes hold NaN or infinite values")
        return np.sqrt(np.clip(b, 0.0, 1.0)) if meta.get("transform") == "sqrt" else b
    raise ValueError(f"unknown feature kind {kind!r} in model metadata")


class SvmKernel:
    """Numpy inference of a fitted PCA? -> StandardScaler -> RBF SVC pipeline.

    scikit-learn's libsvm path evaluates the kernel in double loops (about 2 ms per
    face for 17 k support vectors); one float32 matrix product does the same in a
    tenth of that. Gives the one-vs-one decision values in scikit-learn's order (the
    tests check equality with ``SVC.decision_function``).
    """

    def __init__(self, pipeline):
        steps = [s for _, s in pipeline.steps]
        svc = steps[-1]
        if getattr(svc, "kernel", None) != "rbf":
            raise ValueError("only RBF SVC pipelines are supported")
        self._pre = steps[:-1]
        self.classes = tuple(str(c) for c in svc.classes_)
        self.sv = np.asarray(svc.support_vectors_, dtype=np.float32)
        self.sv_sq = (self.sv.astype(np.float64) ** 2).sum(1).astype(np.float32)
        self.gamma = float(svc._gamma)
        self.dual = np.asarray(svc.dual_coef_, dtype=np.float32)
        self.intercept = np.asarray(svc.intercept_, dtype=np.float32)
        n_sv = np.asarray(svc.n_support_)
        self.starts = np.concatenate([[0], np.cumsum(n_sv)])
        k = len(self.classes)
        self.pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        # The one-vs-one sums as one (n_sv, pairs) matrix: pair (i, j) weighs class i's
        # support vectors by their coefficients against j and class j's by theirs against
        # i (libsvm's layout of dual_coef_). One product instead of 2 per pair in Python
        # (21 pairs for 7 classes: 116 -> 40 us per face, the same values).
        s = self.starts
        self.pair_weights = np.zeros((len(self.sv), len(self.pairs)), dtype=np.float32)
        for p, (i, j) in enumerate(self.pairs):
            self.pair_weights[s[i]:s[i + 1], p] = self.dual[j - 1, s[i]:s[i + 1]]
            self.pair_weights[s[j]:s[j + 1], p] = self.dual[i, s[j]:s[j + 1]]

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        for step in self._pre:
            name = type(step).__name__
            if name == "PCA":
                x = (x - step.mean_) @ step.components_.T
            elif name == "StandardScaler":
                x = (x - step.mean_) / step.scale_
            elif name == "FunctionTransformer":
                x = step.transform(x)
            else:
                raise ValueError(f"unsupported pipeline step {name}")
        return x.astype(np.float32)

    def decision(self, x: np.ndarray) -> np.ndarray:
        """(N, K(K-1)/2) one-vs-one decision values."""
        z = self.transform(x)
        kern = z @ self.sv.T  # squared distances to every support vector, in place
        kern *= -2.0
        kern += (z ** 2).sum(1, keepdims=True)
        kern += self.sv_sq[None]
        np.maximum(kern, 0.0, out=kern)
        kern *= -self.gamma
        np.exp(kern, out=kern)
        return kern @ self.pair_weights + self.intercept


class SklearnFrameModel(EmotionModel):
    """A stateless SVM over one frame's features, with a calibrated softmax.

    The skops file holds ``{"svm": Pipeline, "calibrator": LogisticRegression}``:
    the calibrator maps the SVM's one-vs-one decision values to class probabilities
    (multinomial logistic regression fitted on data the SVM never saw).

    Args:
        name: public model name.
        model_file: skops file.
        meta_file: JSON metadata (``classes``, ``features``, options, metrics).
    """

    def __init__(self, name: str, model_file: str, meta_file: str):
        self.name = name
        self.meta = load_meta(meta_file)
        bundle = load_skops(model_file)
        self.kernel = SvmKernel(bundle["svm"])
        cal = bundle["calibrator"]
        self._cal_w = np.asarray(cal.coef_, dtype=np.float32)
        self._cal_b = np.asarray(cal.intercept_, dtype=np.float32)
        classes = tuple(str(c) for c in cal.classes_)
        if classes != tuple(self.meta["classes"]) or classes != self.kernel.classes:
            raise ValueError(f"{model_file}: classes {classes} differ from its metadata {self.meta['classes']}")
        self.class_names = EMOTIONS_7
        self._order = np.array([classes.index(c) for c in EMOTIONS_7])
        self.needs = frozenset({"landmarks", "image_wh"} if self.meta["features"] == "landmark_distances"
                               else {"blendshapes"})

    def _proba(self, x: np.ndarray) -> np.ndarray:
        logits = self.kernel.decision(x) @ self._cal_w.T + self._cal_b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        return p[:, self._order].astype(np.float32)

    def update(self, face_id: str, frame: FrameInput) -> EmotionEstimate:
        if self.meta["features"] == "landmark_distances":
            if frame.landmarks is None or np.shape(frame.landmarks) != (NUM_LANDMARKS, 3):
                raise ValueError(f"{self.name} needs (478, 3) landmarks")
        x = featurize(self.meta, frame.landmarks, frame.blendshapes, frame.image_wh)
        p = self._proba(x)[0]
        return EmotionEstimate(face_id=face_id, class_names=self.class_names, probabilities=p,
                               model=self.name, frames_used=1, confident=True)

    def predict_frames(self, **arrays: np.ndarray) -> np.ndarray:
        x = featurize(self.meta, arrays.get("landmarks"), arrays.get("blendshapes"), arrays.get("image_wh"))
        out = np.empty((len(x), len(EMOTIONS_7)), np.float32)
        for a in range(0, len(x), 512):
            out[a:a + 512] = self._proba(x[a:a + 512])
        return out


def load_svm_landmarks() -> SklearnFrameModel:
    """The shipped ``svm-landmarks`` model (files sha256-verified)."""
    return SklearnFrameModel("svm-landmarks", "svm_landmarks.skops", "svm_landmarks.json")


def load_svm_blendshapes() -> SklearnFrameModel:
    """The shipped ``svm-blendshapes`` model (files sha256-verified)."""
    return SklearnFrameModel("svm-blendshapes", "svm_blendshapes.skops", "svm_blendshapes.json")
