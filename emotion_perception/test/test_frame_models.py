"""Frame classifiers and image model on real data: the model cards' numbers on fixed
samples, the landmark flip's mirror map, the numpy SVM path, bad input, cost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion_perception.assets import verified_path
from emotion_perception.classifiers import load
from emotion_perception.classifiers.base import FrameInput
from emotion_perception.features import landmark_distances
from emotion_perception.training import augment, data as D
from emotion_perception.types import EMOTIONS_7

#: Rows of each test split used here (fixed sample: the first N).
SAMPLE = 500
#: Accuracy on the sample may differ from the recorded one by float32 round-off only.
ACCURACY_TOL = 0.004

#: Accuracy of each model on the first SAMPLE rows of the test fixtures (the
#: full-split numbers are in the model's JSON and card). RAF-DB's test fixture is the
#: whole split: 0.748 was recorded when the model was trained. FER-2013's is every 7th
#: row of the label-sorted split (all 415 rows here, every class): measured with the
#: shipped model when the fixture was cut (the JSON's sample_accuracy_first_500 is on
#: the full split's first 500 rows).
RECORDED = {"svm-blendshapes": ("rafdb", "test", 0.748), "svm-landmarks": ("fer", "public_test", 0.5928),
            "gnn-landmarks": ("fer", "public_test", 0.4675)}


def _acc(model, d, n=SAMPLE):
    p = model.predict_frames(**{k: d[k][:n] for k in ("landmarks", "blendshapes", "image_wh") if k in d})
    return float((np.array(EMOTIONS_7)[p.argmax(1)] == d["label"][:n]).mean()), p


@pytest.fixture(scope="module")
def rafdb_test(data_dir):
    return D.load_rafdb(data_dir, "test")


@pytest.fixture(scope="module")
def fer_test(data_dir):
    return D.load_fer(data_dir, "public_test")


def test_svm_blendshapes_matches_card_on_rafdb_sample(rafdb_test):
    model = load("svm-blendshapes")
    acc, p = _acc(model, rafdb_test)
    assert acc == pytest.approx(RECORDED["svm-blendshapes"][2], abs=ACCURACY_TOL)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5) and np.all(p >= 0)
    meta = json.loads(verified_path("svm_blendshapes.json").read_text())
    assert meta["metrics"]["rafdb_test"]["accuracy"] > 0.68


def test_svm_landmarks_matches_card_on_fer_sample(fer_test):
    model = load("svm-landmarks")
    acc, _ = _acc(model, fer_test)
    meta = json.loads(verified_path("svm_landmarks.json").read_text())
    assert acc == pytest.approx(RECORDED["svm-landmarks"][2], abs=ACCURACY_TOL)
    assert meta["metrics"]["fer2013_public_test"]["accuracy"] > 0.55


@pytest.mark.parametrize("name,features", [("svm-blendshapes", "blendshapes"), ("svm-landmarks", "landmarks")])
def test_numpy_svm_equals_scikit_learn(name, features, fer_test):
    import skops.io as sio

    model = load(name)
    stem = name.replace("-", "_")
    bundle = sio.load(verified_path(f"{stem}.skops"), trusted=sio.get_untrusted_types(file=verified_path(f"{stem}.skops")))
    from emotion_perception.classifiers.frame import featurize

    x = featurize(model.meta, fer_test["landmarks"][:50], fer_test["blendshapes"][:50], fer_test["image_wh"][:50])
    ours = model.kernel.decision(x)
    ref = bundle["svm"].decision_function(x)
    assert np.max(np.abs(ours - ref)) < 5e-3
    assert np.array_equal(np.argmax(ours, 1), np.argmax(ref, 1)) or np.mean(np.argmax(ours, 1) == np.argmax(ref, 1)) > 0.98


def test_frame_models_refuse_bad_input():
    bs = load("svm-blendshapes")
    with pytest.raises(ValueError):
        bs.update("f", FrameInput(blendshapes=np.full(52, np.nan, np.float32)))
    with pytest.raises(ValueError):
        bs.update("f", FrameInput(blendshapes=np.zeros(51, np.float32)))
    lm = load("svm-landmarks")
    with pytest.raises(ValueError):
        lm.update("f", FrameInput(landmarks=None, image_wh=(640, 480)))
    with pytest.raises(ValueError):
        lm.update("f", FrameInput(landmarks=np.zeros((478, 3), np.float32), image_wh=(640, 480)))  # degenerate


# ---------------------------------------------------------------- flip / mirror map

@pytest.fixture(scope="module")
def mirror(data_dir):
    mux = D.load_muxspace(data_dir, "train")
    return augment.mesh_mirror_map(mux["landmarks"][:3000].astype(np.float32), mux["image_wh"][:3000])


def test_mirror_map_is_an_involution_with_known_pairs(mirror):
    assert sorted(mirror.tolist()) == list(range(478))
    assert np.array_equal(mirror[mirror], np.arange(478))
    for a, b in ((33, 263), (61, 291), (468, 473), (133, 362), (70, 300)):
        assert mirror[a] == b and mirror[b] == a
    for mid in (1, 4, 0, 17, 152, 10):  # nose tip, nose, lips centre, chin, forehead
        assert mirror[mid] == mid


def test_mirror_map_maps_the_tessellation_onto_itself(mirror):
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    edges = {(c.start, c.end) for c in C.FACE_LANDMARKS_TESSELATION}
    edges |= {(b, a) for a, b in edges}
    kept = sum((int(mirror[a]), int(mirror[b])) in edges for a, b in edges)
    assert kept / len(edges) > 0.99


def test_flip_mirrors_geometry_and_is_its_own_inverse(mirror, fer_test):
    lm = fer_test["landmarks"][:20].astype(np.float32)
    wh = fer_test["image_wh"][:20]
    f = augment.flip(lm, mirror)
    assert np.allclose(augment.flip(f, mirror), lm, atol=1e-6)
    # the flipped face's right eye corner sits where the original left one was, mirrored
    assert np.allclose(f[:, 33, 0], 1.0 - lm[:, 263, 0]) and np.allclose(f[:, 33, 1], lm[:, 263, 1])
    d, df = landmark_distances(lm, wh), landmark_distances(f, wh)
    assert np.allclose(df[:, mirror], d, atol=1e-4)
    # a wrong (identity) map would not keep left on the left: eye 33 has smaller x than 263
    assert np.all(f[:, 33, 0] < f[:, 263, 0]) == np.all(lm[:, 33, 0] < lm[:, 263, 0])


def test_distortions_keep_faces_plausible(fer_test):
    rng = np.random.default_rng(0)
    lm = fer_test["landmarks"][0].astype(np.float32)
    for fn in (augment.grid_distort, augment.optical_distort):
        out = fn(lm, (192, 192), rng)
        assert out.shape == lm.shape and not np.allclose(out, lm)
        assert np.abs(out[:, :2] - lm[:, :2]).max() < 0.1  # small: a few % of the image


def test_gnn_landmarks_matches_its_card_and_stays_behind_the_svm(fer_test):
    meta = json.loads(verified_path("gnn_landmarks.json").read_text())
    model = load("gnn-landmarks")
    acc, p = _acc(model, fer_test)
    assert acc == pytest.approx(RECORDED["gnn-landmarks"][2], abs=ACCURACY_TOL)
    assert acc < RECORDED["svm-landmarks"][2]
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)
    svm = json.loads(verified_path("svm_landmarks.json").read_text())
    # the card's verdict: the GNN does not earn its place against the SVM
    assert meta["metrics"]["fer2013_public_test"]["accuracy"] < svm["metrics"]["fer2013_public_test"]["accuracy"]
