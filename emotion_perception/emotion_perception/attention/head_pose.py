"""Head pose (yaw, pitch, roll in radians) from MediaPipe's facial transformation matrix.

Conventions are those of ``emotion_perception_msgs/msg/Attention.msg``: relative to
facing the camera, yaw positive when the head turns to the image's right, pitch
positive when it tilts up, roll positive clockwise in the image.

MediaPipe's matrix maps its canonical face (x right, y up, z towards the viewer) into
its virtual camera frame with the same axes. We write its rotation as
``R = Ry(yaw) @ Rx(-pitch) @ Rz(-roll)`` (:func:`rotation_matrix`), so a face turned
to the image's right has its forward axis ``R[:, 2]`` pointing to +x.

When no matrix is available (the sequence layout of the shared data has none), the
same angles come from a scaled rigid fit (Umeyama) of the landmarks to a canonical
frontal mesh (:func:`head_pose_from_landmarks`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .geometry import RIGID

#: Flips between MediaPipe's camera frame (y up, z to the viewer) and image axes (y down, z away).
FLIP = np.diag([1.0, -1.0, -1.0])


@dataclasses.dataclass(frozen=True)
class HeadPose:
    """Head orientation relative to facing the camera, radians."""

    yaw: float
    pitch: float
    roll: float

    def rotation(self) -> np.ndarray:
        """3x3 rotation in MediaPipe's frame (see :func:`rotation_matrix`)."""
        return rotation_matrix(self.yaw, self.pitch, self.roll)

    def rotation_image(self) -> np.ndarray:
        """3x3 rotation in image axes (x right, y down, z away from the camera)."""
        return FLIP @ self.rotation() @ FLIP


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """MediaPipe-frame rotation of a head with the given angles (radians)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    rz = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def angles_from_rotation(r: np.ndarray) -> HeadPose:
    """Inverse of :func:`rotation_matrix` (pitch within +-90 degrees)."""
    yaw = math.atan2(r[0, 2], r[2, 2])
    pitch = math.asin(max(-1.0, min(1.0, r[1, 2])))
    roll = math.atan2(-r[1, 0], r[1, 1])
    return HeadPose(yaw, pitch, roll)


def head_pose_from_matrix(transform: np.ndarray) -> HeadPose:
    """Head pose from a 4x4 (or 16-value row-major) facial transformation matrix.

    The rotation block is orthonormalised first (MediaPipe's may carry a little scale).

    Raises:
        ValueError: not 16 finite values.
    """
    t = np.asarray(transform, dtype=np.float64).reshape(-1)
    if t.size != 16 or not np.all(np.isfinite(t)):
        raise ValueError("facial transformation matrix must be 16 finite values")
    r = t.reshape(4, 4)[:3, :3]
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    if np.linalg.det(r) < 0:
        raise ValueError("facial transformation matrix is a reflection, not a rotation")
    return angles_from_rotation(r)


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Umeyama similarity fit: ``target ~ scale * source @ R.T + t``.

    Returns:
        (R 3x3, scale, t 3-vector).
    """
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    cov = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(cov)
    e = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[2, 2] = -1
    r = u @ e @ vt
    scale = float(np.trace(np.diag(d) @ e) / max((s ** 2).sum() / len(source), 1e-12))
    return r, scale, mu_t - scale * mu_s @ r.T


def head_pose_from_landmarks(pixels: np.ndarray, canonical: np.ndarray) -> HeadPose:
    """Head pose from pixel landmarks (:func:`geometry.to_pixels`) by a rigid fit.

    Args:
        pixels: (478, 3) landmarks in pixels, image axes.
        canonical: (478, 3) frontal mesh in image axes (any scale), e.g. the shipped
            mean frontal face.
    """
    r_img, _, _ = rigid_fit(canonical[RIGID], pixels[RIGID])
    return angles_from_rotation(FLIP @ r_img @ FLIP)
