"""The aligned face crop (face_crop.py) on real photos: eye line level, face centred,
scale from the landmark geometry, deterministic, the same face whatever the roll."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from conftest import read_rgb

from emotion_perception.face_crop import (LEFT_EYE, MIN_FACE_PX, RIGHT_EYE, CropGeometry, aligned_crop,
                                          crop_geometry, crop_with_geometry, frame_geometry, to_crop,
                                          whole_image_crop)

SIZE = 48


def _landmarks(rgb, k=1):
    from emotion_perception.landmarks import FaceLandmarker

    with FaceLandmarker() as lmk:
        faces = lmk.process(rgb, k * 1_000_000_000)
    assert faces, "MediaPipe found no face in a test photo"
    return faces[0].landmarks


@pytest.fixture(scope="module")
def photos(muxspace_images):
    """Six labelled photos with their landmarks."""
    out = []
    for k, (path, _) in enumerate(muxspace_images[::7]):
        rgb = read_rgb(path)
        out.append((rgb, _landmarks(rgb, k + 1)))
    return out


def _eyes_in_crop(lm, wh, geo):
    px = lm[:, :2] * wh - 0.5
    return to_crop(px[list(RIGHT_EYE)].mean(0, keepdims=True), geo, SIZE)[0], \
        to_crop(px[list(LEFT_EYE)].mean(0, keepdims=True), geo, SIZE)[0], to_crop(px, geo, SIZE)


def test_eye_line_level_and_face_centred_on_real_photos(photos):
    for rgb, lm in photos:
        wh = (rgb.shape[1], rgb.shape[0])
        geo = crop_geometry(lm, wh, margin=0.05)
        right, left, pts = _eyes_in_crop(lm, wh, geo)
        assert abs(right[1] - left[1]) < 0.05, "eye line not level"
        assert right[0] < left[0], "the person's right eye must be on the crop's left (no mirror)"
        lo, hi = pts.min(0), pts.max(0)
        assert np.allclose((lo + hi) / 2, SIZE / 2 - 0.5, atol=0.05), "landmark box not centred"
        # scale: the larger side of the rotated landmark box fills the crop less the margin
        assert max(hi - lo) == pytest.approx(SIZE / 1.1, rel=0.01)
        crop = aligned_crop(rgb, lm, SIZE, 0.05)
        assert crop.shape == (SIZE, SIZE) and crop.dtype == np.uint8
        assert np.array_equal(crop, aligned_crop(rgb, lm, SIZE, 0.05)), "not deterministic"
        assert crop.std() > 10, "a flat crop: the face was missed"


def test_a_rolled_head_gives_the_same_crop(photos):
    """Rotate the photo by 20 degrees, find the face again: the crop is the upright one."""
    rgb, lm = photos[0]
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    rolled = cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    lm_rolled = _landmarks(rolled, 99)
    a = aligned_crop(rgb, lm, SIZE).astype(float)
    b = aligned_crop(rolled, lm_rolled, SIZE).astype(float)
    geo = crop_geometry(lm_rolled, (w, h))
    assert abs(math.degrees(geo.angle) - math.degrees(crop_geometry(lm, (w, h)).angle) + 20) < 4
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    assert np.abs(a - b).mean() < 12


def test_a_close_face_is_shrunk_without_aliasing(photos):
    """A face 8x larger than the crop: the crop equals the one from a 4x smaller image."""
    rgb, lm = photos[1]
    big = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    a = aligned_crop(big, lm, SIZE).astype(float)
    b = aligned_crop(rgb, lm, SIZE).astype(float)
    assert np.abs(a - b).mean() < 6


def test_flip_mirrors_the_crop(photos):
    rgb, lm = photos[2]
    assert np.array_equal(aligned_crop(rgb, lm, SIZE, flip=True), aligned_crop(rgb, lm, SIZE)[:, ::-1])


def test_whole_image_crop_of_a_face_photo_is_the_photo():
    img = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    assert np.array_equal(whole_image_crop(img, 48), img)
    g = frame_geometry((64, 48))
    assert g.side == 48 and g.angle == 0 and g.centre == (31.5, 23.5)


def test_bad_input_is_refused_with_a_reason():
    rgb = np.zeros((100, 100, 3), np.uint8)
    lm = np.full((478, 3), 0.5, np.float32)
    lm[:, 0] += np.linspace(-0.05, 0.05, 478)  # a 10-px face
    with pytest.raises(ValueError, match=f"smaller than {MIN_FACE_PX}"):
        aligned_crop(rgb, lm)
    with pytest.raises(ValueError, match="478"):
        aligned_crop(rgb, lm[:100])
    bad = lm.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        aligned_crop(rgb, bad)
    with pytest.raises(ValueError, match="outside"):
        crop_with_geometry(rgb, CropGeometry((900.0, 900.0), 40.0, 0.0), SIZE)
    with pytest.raises(ValueError, match="uint8"):
        crop_with_geometry(rgb.astype(np.float32), CropGeometry((50.0, 50.0), 40.0, 0.0), SIZE)
