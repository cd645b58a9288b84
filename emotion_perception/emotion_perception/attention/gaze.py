"""Gaze from the iris landmarks, head pose and (optionally) a per-user calibration.

Geometric estimate (no calibration): each iris centre (468 right, 473 left) is placed
relative to its eye corners in the head's own frame (landmarks de-rotated by the head
pose, in aspect-correct pixels), giving offsets ``h`` (to the image's right) and ``v``
(down) in half eye-widths. Minus the population's offsets when looking at the camera
(fitted on mostly frontal portraits, see the model card), they turn into eye-in-head
angles through the eyeball's geometry (``asin(gain * offset)``, gain = half eye width
over the iris' radius of rotation), then into a direction in the camera optical frame
(x right, y down, z forward) by the head rotation.

Gaze point: where the gaze aims in the image, ``u = eye_u + fx * gx / -gz`` with
``fx = 1 / (2 tan(hfov / 2))``. It is the point of the plane through the camera,
perpendicular to the optical axis, that the gaze meets, projected as if that plane
stood at the face's depth: looking into the lens gives the image centre (0.5, 0.5).

Calibration (:class:`GazeCalibration`): BayesianRidge regressions (the reference
study's gaze model) from the gaze features to known target points in the same
normalised coordinates, fitted per user from a short recording (``emotion-perception
calibrate-gaze``) and saved as JSON (or npz), never pickle.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import numpy as np

from .geometry import LEFT_EYE, RIGHT_EYE
from .head_pose import HeadPose

#: Default horizontal field of view of the camera, degrees (a typical webcam / robot head camera).
DEFAULT_HFOV_DEG = 60.0
#: Largest |tan| of a gaze angle used for the gaze point (beyond, the point is clipped).
MAX_POINT_TAN = 10.0
#: Feature names of a :class:`GazeFeatures` vector, in order.
FEATURE_NAMES = ("h_right", "v_right", "h_left", "v_left", "head_yaw", "head_pitch", "head_roll", "eye_u", "eye_v")


def focal_normalised(image_wh: tuple[int, int], hfov_deg: float) -> tuple[float, float]:
    """Focal lengths in normalised image units (fx per width, fy per height)."""
    fx = 1.0 / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    return fx, fx * float(image_wh[0]) / float(image_wh[1])


@dataclasses.dataclass(frozen=True)
class GazeFeatures:
    """Iris offsets (half eye-widths, head frame) and where the eyes are in the image."""

    h_right: float
    v_right: float
    h_left: float
    v_left: float
    head: HeadPose
    eye_u: float
    eye_v: float

    def vector(self) -> np.ndarray:
        return np.array([self.h_right, self.v_right, self.h_left, self.v_left, self.head.yaw, self.head.pitch,
                         self.head.roll, self.eye_u, self.eye_v])


@dataclasses.dataclass(frozen=True)
class GazeEstimate:
    """Gaze of one face.

    Attributes:
        direction: unit vector, camera optical frame (x right, y down, z forward).
        point: (u, v) normalised image coordinates the gaze aims at (see module doc).
        yaw: radians, positive to the image's right. pitch: radians, positive up.
        calibrated: True when it comes from a :class:`GazeCalibration`.
    """

    direction: np.ndarray
    point: tuple[float, float]
    yaw: float
    pitch: float
    calibrated: bool


def _iris_offsets(q: np.ndarray, eye: dict) -> tuple[float, float]:
    outer, inner = q[eye["outer"]], q[eye["inner"]]
    a, b = (outer, inner) if outer[0] < inner[0] else (inner, outer)
    ex = b - a
    half = np.linalg.norm(ex) / 2.0
    ex = ex / max(2.0 * half, 1e-9)
    ey = np.array([0.0, 1.0, 0.0]) - ex[1] * ex
    ey /= max(np.linalg.norm(ey), 1e-9)
    d = q[eye["iris"]] - (a + b) / 2.0
    return float(d @ ex / max(half, 1e-9)), float(d @ ey / max(half, 1e-9))


def gaze_features(pixels: np.ndarray, head: HeadPose, image_wh: tuple[int, int]) -> GazeFeatures:
    """Iris offsets of both eyes in the head frame.

    Args:
        pixels: (478, 3) landmarks in pixels (:func:`geometry.to_pixels`).
        head: the face's head pose.
        image_wh: image (width, height), pixels.
    """
    idx = [RIGHT_EYE["outer"], RIGHT_EYE["inner"], RIGHT_EYE["iris"], LEFT_EYE["outer"], LEFT_EYE["inner"],
           LEFT_EYE["iris"]]
    sub = pixels[idx]
    centre = sub[[0, 1, 3, 4]].mean(0)
    q = np.zeros_like(pixels)
    q[idx] = (sub - centre) @ head.rotation_image()  # row vectors: R^T p
    hr, vr = _iris_offsets(q, RIGHT_EYE)
    hl, vl = _iris_offsets(q, LEFT_EYE)
    return GazeFeatures(hr, vr, hl, vl, head, float(centre[0] / image_wh[0]), float(centre[1] / image_wh[1]))


def direction_angles(g: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) of a camera-frame direction relative to looking into the lens (-z)."""
    return float(math.atan2(g[0], -g[2])), float(math.atan2(-g[1], math.hypot(g[0], g[2])))


def point_from_direction(g: np.ndarray, eye_uv: tuple[float, float], f: tuple[float, float]) -> tuple[float, float]:
    """Gaze point (module doc) of a camera-frame direction seen from the eyes at ``eye_uv``."""
    gz = min(float(g[2]), -1e-6)
    tx = float(np.clip(g[0] / -gz, -MAX_POINT_TAN, MAX_POINT_TAN))
    ty = float(np.clip(g[1] / -gz, -MAX_POINT_TAN, MAX_POINT_TAN))
    return eye_uv[0] + f[0] * tx, eye_uv[1] + f[1] * ty


def direction_from_point(point: tuple[float, float], eye_uv: tuple[float, float],
                         f: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`point_from_direction` (a unit vector with z < 0)."""
    g = np.array([(point[0] - eye_uv[0]) / f[0], (point[1] - eye_uv[1]) / f[1], -1.0])
    return g / np.linalg.norm(g)


@dataclasses.dataclass(frozen=True)
class GazeGeometry:
    """Population constants of the geometric estimate (from the shipped parameters).

    Attributes:
        h0, v0: (right, left) iris offsets when looking at the camera.
        gain: half eye width over the iris' radius of rotation.
    """

    h0: tuple[float, float] = (0.0, 0.0)
    v0: tuple[float, float] = (0.0, 0.0)
    gain: float = 1.3

    def estimate(self, feats: GazeFeatures, image_wh: tuple[int, int], hfov_deg: float = DEFAULT_HFOV_DEG,
                 weights: tuple[float, float] = (1.0, 1.0)) -> GazeEstimate:
        """Geometric gaze from the features; ``weights`` (right, left) favour the more open eye."""
        wr, wl = max(weights[0], 1e-3), max(weights[1], 1e-3)
        h = (wr * (feats.h_right - self.h0[0]) + wl * (feats.h_left - self.h0[1])) / (wr + wl)
        v = (wr * (feats.v_right - self.v0[0]) + wl * (feats.v_left - self.v0[1])) / (wr + wl)
        ye = math.asin(max(-1.0, min(1.0, self.gain * h)))
        pe = -math.asin(max(-1.0, min(1.0, self.gain * v)))
        g_head = np.array([math.cos(pe) * math.sin(ye), -math.sin(pe), -math.cos(pe) * math.cos(ye)])
        g = feats.head.rotation_image() @ g_head
        g /= np.linalg.norm(g)
        f = focal_normalised(image_wh, hfov_deg)
        yaw, pitch = direction_angles(g)
        return GazeEstimate(g, point_from_direction(g, (feats.eye_u, feats.eye_v), f), yaw, pitch, False)


class CalibrationError(ValueError):
    """A calibration file cannot be read, or too few samples to fit one."""


@dataclasses.dataclass
class GazeCalibration:
    """Per-user gaze regression: :data:`FEATURE_NAMES` -> gaze point (u, v).

    Two scikit-learn ``BayesianRidge`` models (one per coordinate) on standardised
    features; prediction is a dot product here, so sklearn is needed only to fit.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (2, n_features)
    intercept: np.ndarray  # (2,)
    hfov_deg: float = DEFAULT_HFOV_DEG
    n_samples: int = 0
    train_rmse: float = float("nan")

    MIN_SAMPLES = 10

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray, hfov_deg: float = DEFAULT_HFOV_DEG) -> "GazeCalibration":
        """Fit from (N, 9) feature vectors and (N, 2) known target points.

        Raises:
            CalibrationError: fewer than ``MIN_SAMPLES`` finite samples.
        """
        from sklearn.linear_model import BayesianRidge

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        ok = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1)
        x, y = x[ok], y[ok]
        if len(x) < cls.MIN_SAMPLES:
            raise CalibrationError(f"{len(x)} usable samples; at least {cls.MIN_SAMPLES} are needed")
        mean, scale = x.mean(0), x.std(0)
        scale[scale < 1e-9] = 1.0
        z = (x - mean) / scale
        coef, intercept = [], []
        for k in range(2):
            m = BayesianRidge().fit(z, y[:, k])
            coef.append(m.coef_)
            intercept.append(m.intercept_)
        cal = cls(mean, scale, np.array(coef), np.array(intercept), hfov_deg, len(x))
        cal.train_rmse = float(np.sqrt(np.mean((cal.predict_points(x) - y) ** 2)))
        return cal

    def predict_points(self, features: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(features) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept

    def estimate(self, feats: GazeFeatures, image_wh: tuple[int, int]) -> GazeEstimate:
        u, v = self.predict_points(feats.vector())[0]
        f = focal_normalised(image_wh, self.hfov_deg)
        g = direction_from_point((u, v), (feats.eye_u, feats.eye_v), f)
        yaw, pitch = direction_angles(g)
        return GazeEstimate(g, (float(u), float(v)), yaw, pitch, True)

    def to_dict(self) -> dict:
        return {"format": "emotion_perception.gaze_calibration", "version": 1, "feature_names": list(FEATURE_NAMES),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(), "hfov_deg": self.hfov_deg, "n_samples": self.n_samples,
                "train_rmse": self.train_rmse}

    def save(self, path) -> None:
        """Write ``.json`` (default) or ``.npz`` by the file's suffix."""
        path = pathlib.Path(path)
        d = self.to_dict()
        if path.suffix == ".npz":
            np.savez(path, **{k: np.asarray(v) for k, v in d.items()})
        else:
            path.write_text(json.dumps(d, indent=1))

    @classmethod
    def load(cls, path) -> "GazeCalibration":
        """Read a file written by :meth:`save`.

        Raises:
            CalibrationError: missing file, wrong format or feature set.
        """
        path = pathlib.Path(path)
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    d = {k: z[k].tolist() for k in z.files}
            else:
                d = json.loads(path.read_text())
            if tuple(d["feature_names"]) != FEATURE_NAMES:
                raise CalibrationError(f"{path}: features {d['feature_names']} differ from {FEATURE_NAMES}")
            cal = cls(np.array(d["mean"], float), np.array(d["scale"], float), np.array(d["coef"], float),
                      np.array(d["intercept"], float), float(d["hfov_deg"]), int(d["n_samples"]),
                      float(d["train_rmse"]))
        except CalibrationError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"cannot read gaze calibration {path}: {e}") from None
        n = len(FEATURE_NAMES)
        if cal.mean.shape != (n,) or cal.scale.shape != (n,) or cal.coef.shape != (2, n) or cal.intercept.shape != (2,):
            raise CalibrationError(f"{path}: arrays of the wrong shape")
        return cal
