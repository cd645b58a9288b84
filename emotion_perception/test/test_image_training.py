"""The reference MobileNetV2 training command runs end to end (random weights, a few
real photos): crops with MediaPipe, trains, exports TFLite, records sha256, and the
result loads and classifies under LiteRT."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import read_rgb

#: Photos per class used (the run must stay short on a 2-core CI machine).
PER_CLASS = 2


def test_train_image_cnn_end_to_end_with_random_weights(muxspace_images, tmp_path):
    from emotion_perception.classifiers.image_cnn import crop_face, landmarks_box, load_mobilenet
    from emotion_perception.cli import main
    from emotion_perception.landmarks import FaceLandmarker

    picked, seen = [], {}
    for path, label in muxspace_images:
        if seen.get(label, 0) < PER_CLASS:
            seen[label] = seen.get(label, 0) + 1
            picked.append((path, label))
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        for path, label in picked:
            w.writerow([path.name, label])
        w.writerow(["missing.jpg", "happy"])  # skipped, counted
    out = tmp_path / "out"
    # --imagenet-weights is required by the command; a test has none: the training
    # function is the same one the command calls, with weights=None.
    with pytest.raises(SystemExit, match="imagenet-weights"):
        main(["train", "image-cnn", "--images", str(picked[0][0].parent), "--labels", str(labels),
              "--out", str(out)])
    from emotion_perception.training.image import train_image

    meta = train_image(picked[0][0].parent, labels, None, out, epochs=1)
    assert meta["images"] == len(picked) and meta["skipped"] == 1
    assert meta["trainable_parameters"] < meta["parameters"] and 100_000 < meta["trainable_parameters"] < 300_000
    assert json.loads((out / "image_mobilenetv2.json").read_text())["class_names"][0] == "angry"
    assert "image_mobilenetv2.tflite" in (out / "SHA256SUMS").read_text()
    model = load_mobilenet(out / "image_mobilenetv2.tflite")
    rgb = read_rgb(picked[0][0])
    with FaceLandmarker() as lmk:
        face = lmk.process(rgb, 1_000_000_000)[0]
    p = model.classify_crop(crop_face(rgb, landmarks_box(face.landmarks, face.image_wh)))
    assert p.shape == (7,) and np.isclose(p.sum(), 1.0, atol=1e-5)
