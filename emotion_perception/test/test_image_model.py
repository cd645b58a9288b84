"""image-cnn on the real labelled photos: MediaPipe face box -> crop -> mini-Xception
gives the model card's number; preprocessing and crops; cost per face."""

from __future__ import annotations


import numpy as np
import pytest
from conftest import read_rgb

from emotion_perception.classifiers import load
from emotion_perception.classifiers.base import FrameInput
from emotion_perception.classifiers.image_cnn import (FER_CLASSES, crop_face, haar_faces, landmarks_box,
                                                      preprocess)
from emotion_perception.types import EMOTIONS_7, BoundingBox

#: Correct top-1 labels on the 42 muxspace photos (models/image-cnn.md).
RECORDED_CORRECT = 19


@pytest.fixture(scope="module")
def photo_faces(muxspace_images):
    from emotion_perception.landmarks import FaceLandmarker

    out = []
    for k, (path, label) in enumerate(muxspace_images):
        rgb = read_rgb(path)
        with FaceLandmarker() as lmk:
            faces = lmk.process(rgb, (k + 1) * 1_000_000_000)
        out.append((rgb, faces[0] if faces else None, label))
    return out


def test_image_cnn_matches_card_on_the_42_photos(photo_faces):
    model = load("image-cnn")
    correct, seen = 0, 0
    for rgb, face, label in photo_faces:
        assert face is not None
        crop = crop_face(rgb, landmarks_box(face.landmarks, face.image_wh))
        est = model.update(face.face_id, FrameInput(face_crop=crop))
        assert est.class_names == EMOTIONS_7 and abs(float(est.probabilities.sum()) - 1) < 1e-4
        correct += est.label == label
        seen += 1
    assert seen == 42
    assert abs(correct - RECORDED_CORRECT) <= 1
    assert correct > 42 / 7 * 2  # far above chance


def test_preprocessing_is_the_fer_packages():
    crop = np.zeros((100, 80, 3), np.uint8)
    crop[:, :40] = 255
    x = preprocess(crop)
    assert x.shape == (64, 64, 1) and x.dtype == np.float32
    assert x.min() == pytest.approx(-1.0) and x.max() == pytest.approx(1.0)
    assert FER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_crop_pads_outside_the_image_and_refuses_tiny_boxes():
    rgb = np.full((50, 60, 3), 200, np.uint8)
    c = crop_face(rgb, BoundingBox(-10, -5, 40, 30), margin=0.0)
    assert c.shape == (40, 40, 3) and c[0, 0].tolist() == [0, 0, 0] and c[-1, -1].tolist() == [200, 200, 200]
    with pytest.raises(ValueError):
        crop_face(rgb, BoundingBox(0, 0, 5, 5))
    with pytest.raises(ValueError):
        load("image-cnn").update("f", FrameInput(face_crop=None))


def test_haar_option_says_what_is_missing(astronaut_rgb, tmp_path):
    with pytest.raises(FileNotFoundError, match="cascade"):
        haar_faces(astronaut_rgb, cascade_path=str(tmp_path / "none.xml"))


#: evaluate --input muxspace/images (accuracy, macro-F1), recorded in models/fused.md.
FOLDER_RECORDED = {"image-cnn": 0.4524, "svm-landmarks": 0.5000, "lstm": 0.5000, "fused": 0.5238}


def test_evaluate_on_the_photo_folder_and_fused_beats_its_members(data_dir, tmp_path):
    """The CLI on a folder of photos: landmarker -> every model; the fused estimate
    beats each model it fuses there (landmarks present: svm-landmarks, lstm, image-cnn)."""
    from emotion_perception.cli.evaluate import score
    from emotion_perception.cli.predict import load_arrays, predict_arrays

    arrays = load_arrays(data_dir / "muxspace" / "images")
    assert len(arrays["label"]) == 42 and np.isfinite(arrays["face_crop"]).all()
    acc = {}
    for name in FOLDER_RECORDED:
        probs, _ = predict_arrays(load(name), arrays)
        acc[name] = score(list(EMOTIONS_7), probs, arrays["label"])["accuracy"]
        assert acc[name] == pytest.approx(FOLDER_RECORDED[name], abs=1.5 / 42), name
    assert acc["fused"] > max(v for k, v in acc.items() if k != "fused")
