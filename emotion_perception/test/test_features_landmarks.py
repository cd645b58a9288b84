"""ROS-free tests of the landmark distance feature on real MediaPipe landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_perception.features import (LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER, landmark_distances,
                                         pixel_coordinates)

#: float32 round-off on distances of order 1.
TOL = 1e-4


@pytest.fixture(scope="module")
def mux(data_dir):
    d = np.load(data_dir / "muxspace" / "features.npz", allow_pickle=False)
    return d["landmarks"][:20].astype(np.float32), d["image_wh"][:20]


def _from_pixels(p, wh):
    """Back to MediaPipe normalised coordinates (z in image-width units)."""
    return np.stack([p[..., 0] / wh[0], p[..., 1] / wh[1], p[..., 2] / wh[0]], axis=-1)


def test_shape_reference_and_eye_corners(mux):
    lm, wh = mux
    f = landmark_distances(lm, wh)
    assert f.shape == (20, 478) and f.dtype == np.float32
    assert np.all(f[:, NOSE_TIP] == 0)
    g = landmark_distances(lm, wh, reference=RIGHT_EYE_OUTER)
    np.testing.assert_allclose(g[:, LEFT_EYE_OUTER], 1.0, atol=TOL)
    # batch and single-face calls agree
    np.testing.assert_allclose(landmark_distances(lm[3], wh[3]), f[3], atol=TOL)


def test_invariant_to_position_scale_rotation_and_image_size(mux):
    lm, wh = mux
    f = landmark_distances(lm[0], wh[0])
    p = pixel_coordinates(lm[0], wh[0])
    a = np.deg2rad(17.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], np.float32)
    moved = (p @ rot.T) * 0.6 + np.array([55.0, -20.0, 3.0], np.float32)
    new_wh = (1280, 720)
    g = landmark_distances(_from_pixels(moved, new_wh), new_wh)
    np.testing.assert_allclose(g, f, atol=TOL)


def test_aspect_ratio_matters(mux):
    """The same normalised coordinates on a non-square image are a different face."""
    lm, wh = mux
    sq = landmark_distances(lm[0], (500, 500))
    wide = landmark_distances(lm[0], (1000, 500))
    assert np.max(np.abs(sq - wide)) > 0.05


@pytest.mark.parametrize("bad, wh", [
    (np.zeros((468, 3)), (1, 1)),
    (np.full((478, 3), np.nan), (1, 1)),
    (np.zeros((478, 3)), (1, 1)),
    (np.random.default_rng(0).random((478, 3)), (0, 10)),
])
def test_bad_input_raises(bad, wh):
    with pytest.raises(ValueError):
        landmark_distances(bad, wh)
