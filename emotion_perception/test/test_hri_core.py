"""The REP-155 tables and geometry of emotion_perception.hri, without ROS: ids, the
expression and FACS mappings, the 70-landmark table, TF math and the engagement rule,
on real MediaPipe results (fixtures/data/muxspace/features.npz)."""

from __future__ import annotations

import math
import struct
import zipfile

import numpy as np
import pytest

from emotion_perception import hri
from emotion_perception.assets import models_dir
from emotion_perception.types import EMOTIONS_7

from conftest import DATA

#: Angle tolerances, degrees: a frontal face's axes against the camera's.
FRONTAL_TOL_DEG = 25.0
#: A frontal face's up and left axes against its landmarks' in the image, degrees.
IN_PLANE_TOL_DEG = 15.0


@pytest.fixture(scope="module")
def feats():
    return np.load(DATA / "muxspace" / "features.npz")


def _rep_constants(msg: str) -> dict[str, str]:
    """NAME -> value of the string constants of an hri_msgs .msg (the kit's copy, when here)."""
    import pathlib

    p = pathlib.Path(__file__).resolve().parents[3] / "shared" / "ros2-hri-kit" / "src" / "hri_msgs" / "msg" / msg
    if not p.is_file():
        return {}
    out = {}
    for line in p.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("string ") and "=" in line:
            name, value = line[len("string "):].split("=", 1)
            out[name.strip()] = value.strip().strip('"')
    return out


# ------------------------------------------------------------------ expressions


def test_every_class_maps_to_a_rep_constant():
    assert set(hri.EXPRESSION_OF) == set(EMOTIONS_7)
    assert set(hri.EXPRESSION_OF.values()) <= set(hri.REP_EXPRESSIONS)
    # the three spelled differently from the REP
    assert (hri.EXPRESSION_OF["surprise"], hri.EXPRESSION_OF["disgust"], hri.EXPRESSION_OF["fear"]) == \
        ("surprised", "disgusted", "scared")


def test_rep_constants_match_hri_msgs():
    try:
        from hri_msgs.msg import Expression
    except ImportError:
        constants = _rep_constants("Expression.msg")
        if not constants:
            pytest.skip("neither hri_msgs nor ../shared/ros2-hri-kit here: nothing to compare the table with")
        values = set(constants.values())
    else:
        values = {getattr(Expression, n) for n in dir(Expression)
                  if n.isupper() and isinstance(getattr(Expression, n), str)}
    assert set(hri.REP_EXPRESSIONS) == values


@pytest.mark.parametrize("label,conf,confident,want", [
    ("happy", 0.9, True, ("happy", 0.9)),
    ("fear", 0.6, True, ("scared", 0.6)),
    ("sad", 0.7, False, ("sad", 0.0)),          # warming up: confidence 0
    ("angry", float("nan"), True, ("angry", 0.0)),
    ("unknown", 0.8, True, ("neutral", 0.0)),   # no REP constant
])
def test_expression_of(label, conf, confident, want):
    e = hri.expression_of(label, conf, 0.5, -0.2, confident)
    assert (e.expression, pytest.approx(e.confidence)) == (want[0], pytest.approx(want[1]))
    assert e.expression in hri.REP_EXPRESSIONS


def test_expression_valence_arousal_nan_and_range():
    e = hri.expression_of("happy", 0.9, float("nan"), 3.0)
    assert (e.valence, e.arousal) == (0.0, 1.0)


# ------------------------------------------------------------------ FACS


def test_blendshape_names_are_mediapipes(feats):
    assert tuple(str(n) for n in feats["blendshape_names"]) == hri.BLENDSHAPE_NAMES


def test_facs_table_uses_known_aus_and_blendshapes():
    for au, (rule, names) in hri.AU_FROM_BLENDSHAPES.items():
        assert 0 < au < hri.NUM_AU_SLOTS and rule in ("one", "mean", "max", "diff")
        assert all(n in hri.BLENDSHAPE_NAMES for n in names)
        assert len(names) == (1 if rule == "one" else 2)


def test_facs_rules():
    s = np.zeros(52, np.float32)
    s[hri.BLENDSHAPE_NAMES.index("mouthSmileLeft")] = 0.8
    s[hri.BLENDSHAPE_NAMES.index("mouthSmileRight")] = 0.4
    s[hri.BLENDSHAPE_NAMES.index("jawOpen")] = 0.5
    s[hri.BLENDSHAPE_NAMES.index("mouthClose")] = 0.7
    s[hri.BLENDSHAPE_NAMES.index("jawRight")] = 0.3
    s[hri.BLENDSHAPE_NAMES.index("browInnerUp")] = 0.6
    intensity, conf = hri.facs_of(s, 0.9)
    assert intensity.shape == conf.shape == (99,)
    assert intensity[12] == pytest.approx(0.6)      # mean of the two smiles
    assert intensity[26] == pytest.approx(0.5)      # jaw drop
    assert intensity[25] == pytest.approx(0.0)      # lips part: jaw open minus lips closed, clipped
    assert intensity[30] == pytest.approx(0.3)      # jaw sideways: either side
    assert intensity[1] == pytest.approx(0.6)
    mapped = sorted(hri.AU_FROM_BLENDSHAPES)
    assert np.allclose(conf[mapped], 0.9) and np.count_nonzero(conf) == len(mapped)
    assert not intensity[[a for a in range(99) if a not in hri.AU_FROM_BLENDSHAPES]].any()


def test_facs_refuses_bad_scores():
    with pytest.raises(ValueError):
        hri.facs_of(np.zeros(51))
    bad = np.zeros(52)
    bad[3] = np.nan
    with pytest.raises(ValueError):
        hri.facs_of(bad)


def test_facs_on_real_faces_smile_for_happy(feats):
    intensity = np.stack([hri.facs_of(b)[0] for b in feats["blendshapes"]])
    labels = np.array([str(x) for x in feats["label"]])
    assert intensity[labels == "happy", 12].mean() > 2 * intensity[labels != "happy", 12].mean()


# ------------------------------------------------------------------ landmarks


def test_landmark_table_shape_and_range():
    assert len(hri.LANDMARKS_70) == 70
    assert all(0 <= i < 478 for i in hri.LANDMARKS_70)
    assert len(set(hri.LANDMARKS_70)) == 70
    assert hri.LANDMARKS_70[hri.SELLION_70] == 168 and hri.LANDMARKS_70[68:] == (468, 473)


def test_landmark_table_follows_the_dlib_layout_on_real_faces(feats):
    """On upright faces: the jaw runs from image left (the person's right) to image
    right, the menton is lowest, eyes sit above the nose tip and the mouth below it,
    each eye's corners bracket its pupil."""
    checked = 0
    for lm, wh in zip(feats["landmarks"], feats["image_wh"]):
        p = hri.landmarks_70(lm) * wh
        if abs(p[0, 1] - p[16, 1]) > 0.2 * (p[16, 0] - p[0, 0]):  # a tilted head
            continue
        checked += 1
        assert p[0, 0] < p[8, 0] < p[16, 0]
        assert p[8, 1] == pytest.approx(p[:17, 1].max(), abs=0.05 * (p[16, 0] - p[0, 0]))
        assert p[36, 0] < p[68, 0] < p[39, 0] and p[42, 0] < p[69, 0] < p[45, 0]
        assert p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean()
        assert p[17:22, 1].mean() < p[36:42, 1].mean() and p[22:27, 1].mean() < p[42:48, 1].mean()
        assert p[48, 0] < p[51, 0] < p[54, 0] and p[51, 1] < p[57, 1]
    assert checked > 100


# ------------------------------------------------------------------ TF


def _canonical_vertex(k: int) -> np.ndarray:
    """Vertex k of the canonical face inside face_landmarker.task (protobuf, read by hand)."""
    buf = zipfile.ZipFile(models_dir() / "face_landmarker.task").read("geometry_pipeline_metadata_landmarks.binarypb")

    def varint(b, i):
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return v, i

    def fields(b):
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            f, wt = key >> 3, key & 7
            if wt == 0:
                v, i = varint(b, i)
            elif wt == 2:
                n, i = varint(b, i)
                v, i = b[i:i + n], i + n
            elif wt == 5:
                v, i = b[i:i + 4], i + 4
            else:
                v, i = b[i:i + 8], i + 8
            yield f, v

    mesh = next(v for f, v in fields(buf) if f == 1)
    floats = [struct.unpack("<f", v)[0] for f, v in fields(mesh) if f == 3]
    return np.array(floats[k * 5:k * 5 + 3])


def test_sellion_constant_is_the_models():
    assert np.allclose(_canonical_vertex(168), hri.SELLION_CANONICAL_CM, atol=1e-3)


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        r = hri.matrix_from_quaternion(q)
        q2 = hri.quaternion_from_matrix(r)
        assert np.allclose(hri.matrix_from_quaternion(q2), r, atol=1e-9)


def _angle(a, b) -> float:
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def test_face_frame_axes_and_origin_on_real_faces(feats):
    """Every face frame is a rotation; on faces that look into the camera (x back at
    it), z runs up the face and y to the person's left as the landmarks do; the origin projects onto the sellion
    landmark through the 63 degree camera MediaPipe assumes, at the depth its matrix gives."""
    frontal = 0
    for lm, tf, wh in zip(feats["landmarks"], feats["transform"], feats["image_wh"]):
        p, r = hri.face_pose(tf, lm[hri.SELLION_MP, :2], wh)
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-3) and np.linalg.det(r) == pytest.approx(1, abs=1e-3)
        assert 0.05 < p[2] < 5.0  # metres in front of the camera (photos filled by a face: close)
        assert p[2] == pytest.approx(-(tf[2, :3] @ hri.SELLION_CANONICAL_CM + tf[2, 3]) / 100)
        f = (wh[1] / 2) / math.tan(math.radians(hri.MEDIAPIPE_VERTICAL_FOV_DEG) / 2)
        u, v = f * p[0] / p[2] + wh[0] / 2, f * p[1] / p[2] + wh[1] / 2
        assert abs(u - lm[168, 0] * wh[0]) < 0.5 and abs(v - lm[168, 1] * wh[1]) < 0.5  # pixels
        if _angle(r[:, 0], (0, 0, -1)) < FRONTAL_TOL_DEG:
            frontal += 1
            px = lm[:, :2] * wh
            # z (up) points from the chin to the forehead, y from the right eye to the left, in the image
            assert _angle(r[:2, 2], px[10] - px[152]) < IN_PLANE_TOL_DEG
            assert _angle(r[:2, 1], px[263] - px[33]) < IN_PLANE_TOL_DEG
    assert frontal > 100


def test_face_pose_with_camera_info_rescales_depth(feats):
    lm, tf, wh = feats["landmarks"][0], feats["transform"][0], tuple(int(v) for v in feats["image_wh"][0])
    p0, r0 = hri.face_pose(tf, lm[168, :2], wh)
    f = (wh[1] / 2) / math.tan(math.radians(hri.MEDIAPIPE_VERTICAL_FOV_DEG) / 2)
    same = hri.Intrinsics(f, f, wh[0] / 2, wh[1] / 2, wh[0], wh[1])
    p1, r1 = hri.face_pose(tf, lm[168, :2], wh, same)
    assert np.allclose(p0, p1, atol=0.01) and np.allclose(r0, r1)
    tele = hri.Intrinsics(2 * f, 2 * f, wh[0] / 2, wh[1] / 2, wh[0], wh[1])  # twice the focal length
    p2, _ = hri.face_pose(tf, lm[168, :2], wh, tele)
    assert p2[2] == pytest.approx(2 * p0[2], rel=1e-6)


def test_gaze_rotation_z_along_the_gaze():
    for g in ([0, 0, -1], [0.3, -0.2, -0.9], [0, 0, 1], [1, 0, 0]):
        r = hri.gaze_rotation(g)
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1)
        assert np.allclose(r[:, 2], np.asarray(g) / np.linalg.norm(g))
    r = hri.gaze_rotation([0, 0, -1])  # into the camera: x to the person's right = image left
    assert np.allclose(r[:, 0], (-1, 0, 0)) and np.allclose(r[:, 1], (0, 1, 0))


# ------------------------------------------------------------------ ROI and crops


def test_roi_clipped_to_unit_square(feats):
    lm = feats["landmarks"][0].copy()
    lm[:, 0] -= 0.5  # a face cut by the left border
    x0, y0, x1, y1 = hri.normalised_roi(lm)
    assert 0.0 == x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0


def test_crops_are_bgr_128(feats):
    rgb = np.zeros((360, 640, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    lm = feats["landmarks"][0]
    c = hri.cropped_bgr(rgb, hri.normalised_roi(lm), "rgb8")
    a = hri.aligned_bgr(rgb, lm, "rgb8")
    for img in (c, a):
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert img[..., 2].max() == 255 and img[..., 0].max() == 0  # red lands in the R of BGR
    grey = hri.cropped_bgr(np.full((360, 640), 77, np.uint8), (0.2, 0.2, 0.4, 0.6), "mono8")
    assert grey.shape == (128, 128, 3) and grey.max() == 77
    assert grey[:, 0].max() == 0  # a tall box is centred and zero-padded at the sides


# ------------------------------------------------------------------ ids


def test_ids_confirmed_lost_and_never_reused():
    """keep_s=0: lost at the first image without it; a lost id is never given again."""
    ids = hri.FaceIds(confirm_frames=3, prefix="f", keep_s=0.0)
    assert ids.update(["a"], 0.0) == ([], []) and ids.update(["a"], 0.1) == ([], [])
    assert ids.update(["a", "b"], 0.2) == (["f1"], []) and ids.tracked(["a", "b"]) == ["f1"]
    ids.update(["a", "b"], 0.3)
    new, lost = ids.update(["a", "b"], 0.4)
    assert new == ["f2"] and ids.tracked(["a", "b"]) == ["f1", "f2"]
    assert ids.update(["b"], 0.5) == ([], ["f1"])            # gone at the first image without it
    for k in range(3):
        new, _ = ids.update(["a", "b"], 0.6 + k / 10)           # the same landmark id coming back
    assert new == ["f3"] and ids.tracked(["a", "b"]) == ["f3", "f2"]
    assert sorted(ids.update([], 1.0)[1]) == ["f2", "f3"] and ids.tracked([]) == []


def test_ids_kept_through_a_short_miss_and_lost_after_keep_s():
    """A face missing from an image leaves tracked at once but keeps its id if seen again
    within keep_s; missing longer it is lost, by the next image or by expire() when the
    images stop, and comes back under a new id."""
    ids = hri.FaceIds(confirm_frames=1, prefix="f", keep_s=0.5)
    assert ids.update(["a", "b"], 0.0) == (["f1", "f2"], [])
    assert ids.update(["b"], 0.1) == ([], []) and ids.tracked(["b"]) == ["f2"]   # out of tracked at once
    assert ids.missing == ["f1"]
    assert ids.update(["a", "b"], 0.5) == ([], []) and ids.tracked(["a", "b"]) == ["f1", "f2"]  # kept
    assert ids.missing == []
    assert ids.update(["b"], 0.6) == ([], [])
    assert ids.expire(1.0) == [] and ids.expire(1.11) == ["f1"]   # missing for more than 0.5 s: lost
    assert ids.update(["a", "b"], 1.2) == (["f3"], [])            # back: a new id, f1 never again
    assert ids.update([], 1.3) == ([], []) and ids.tracked([]) == []
    assert sorted(ids.update([], 1.81)[1]) == ["f2", "f3"]       # lost by the next image as well
    with pytest.raises(ValueError):
        hri.FaceIds(keep_s=-1.0)


def test_random_prefixes_are_identifiers():
    a, b = hri.FaceIds(seed=1), hri.FaceIds(seed=2)
    assert a.prefix != b.prefix
    for p in (a.prefix, b.prefix):
        assert p.isidentifier() and p[0].isalpha()
    with pytest.raises(ValueError):
        hri.FaceIds(prefix="1x")
    with pytest.raises(ValueError):
        hri.FaceIds(confirm_frames=0)


# ------------------------------------------------------------------ engagement


def test_engagement_rule():
    e = hri.Engagement(looking=0.5, max_distance_m=2.0, engage_s=1.0, disengage_s=1.5)
    assert e.level == hri.UNKNOWN
    assert e.update(0.1, 1.0, 0.0) == hri.DISENGAGED
    assert e.update(0.9, 1.0, 0.1) == hri.ENGAGING
    assert e.update(0.9, 1.0, 0.6) == hri.ENGAGING
    assert e.update(0.9, 1.0, 1.1) == hri.ENGAGED
    assert e.update(0.2, 1.0, 1.2) == hri.DISENGAGING
    assert e.update(0.9, 1.0, 1.3) == hri.ENGAGED        # looks back in time
    assert e.update(0.9, 3.0, 1.4) == hri.DISENGAGING    # too far away
    assert e.update(0.2, 1.0, 2.8) == hri.DISENGAGING
    assert e.update(0.2, 1.0, 3.0) == hri.DISENGAGED
    assert e.update(0.9, 1.0, 3.1) == hri.ENGAGING
    assert e.update(0.1, 1.0, 3.2) == hri.DISENGAGED     # a glance is not engagement


def test_aligned_warps_only_the_face_but_equals_the_whole_image_warp(feats):
    import cv2

    from emotion_perception.face_crop import crop_geometry

    img = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    lm = feats["landmarks"][3].astype(np.float32).copy()
    lm[:, 0], lm[:, 1] = lm[:, 0] * 0.4 + 0.3, lm[:, 1] * 0.5 + 0.2
    geo = crop_geometry(lm, (640, 360), 0.05)
    m = cv2.getRotationMatrix2D(geo.centre, math.degrees(geo.angle), 128 / geo.side)
    m[0, 2] += 64 - geo.centre[0]
    m[1, 2] += 64 - geo.centre[1]
    whole = cv2.warpAffine(img, m, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert np.abs(hri.aligned_bgr(img, lm, "bgr8").astype(int) - whole).max() <= 1  # rounding only
