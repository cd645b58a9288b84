"""The reference image model: MobileNetV2 transfer learning on face crops.

Published reference (facial expressions on face crops): MobileNetV2 with ImageNet
weights, frozen, two dense layers and a softmax over the 7 classes, class weights
against imbalance, face crops resized to 224x224; 0.823 accuracy, 3.7 M parameters
(137 k trainable), 39 ms per step on a CPU. The image data set it needs is not in
this repository; what a user needs::

    emotion-perception train image-cnn --images DIR --labels CSV \\
        --imagenet-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 \\
        [--out DIR] [--epochs N]

- ``DIR``: face photos (JPEG/PNG, any size, one face each; the largest face found by
  MediaPipe is cropped, square, widened by :data:`CROP_MARGIN`).
- ``CSV``: columns ``image,label``; ``image`` a file name in ``DIR``, ``label`` one of
  ``angry disgust fear happy neutral sad surprise``.
- the ImageNet weights file of Keras' MobileNetV2 (alpha 1.0, 224, no top), from the
  Keras applications release assets (``keras.applications.MobileNetV2(weights=
  "imagenet", include_top=False)`` downloads the same file).

Writes ``image_mobilenetv2.tflite`` and ``image_mobilenetv2.json`` (classes, input
size, validation metrics) into ``--out`` and records their sha256 in the
``SHA256SUMS`` there; load it with
``emotion_perception.classifiers.image_cnn.load_mobilenet(path)``.
"""

from __future__ import annotations

import csv
import json
import pathlib
import time

import numpy as np

from ..types import EMOTIONS_7

INPUT_SIZE = 224
CROP_MARGIN = 0.1
DENSE = (128, 64)
DROPOUT = 0.3
EPOCHS = 15
BATCH = 32
LEARNING_RATE = 1e-3
VAL_FRACTION = 0.2


def build(keras, weights):
    """MobileNetV2 (frozen) -> GAP -> Dense 128 -> Dense 64 -> softmax 7.

    Args:
        weights: path of the ImageNet no-top weights file, or None (random: tests).
    """
    base = keras.applications.MobileNetV2(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False,
                                          weights=weights, pooling="avg")
    base.trainable = False
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")  # RGB scaled to [-1, 1]
    x = base(inp, training=False)
    for units in DENSE:
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(DROPOUT)(x)
    out = keras.layers.Dense(len(EMOTIONS_7), activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


def load_crops(images_dir, labels_csv, margin: float = CROP_MARGIN):
    """(N, 224, 224, 3) float32 crops in [-1, 1] and (N,) class indices; images
    without a face or with an unknown label are skipped (counted in the return)."""
    import cv2

    from ..classifiers.image_cnn import crop_face, landmarks_box
    from ..landmarks import FaceLandmarker, LandmarkerOptions

    images_dir = pathlib.Path(images_dir)
    xs, ys, skipped = [], [], 0
    with open(labels_csv) as f:
        rows = list(csv.DictReader(f))
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lmk:
        for k, row in enumerate(rows):
            label = row["label"].strip().lower()
            bgr = cv2.imread(str(images_dir / row["image"]), cv2.IMREAD_COLOR)
            if label not in EMOTIONS_7 or bgr is None:
                skipped += 1
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            lmk.reset()
            faces = lmk.process(rgb, (k + 1) * 1_000_000_000)
            if not faces:
                skipped += 1
                continue
            crop = crop_face(rgb, landmarks_box(faces[0].landmarks, faces[0].image_wh), margin)
            crop = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
            xs.append(crop.astype(np.float32) / 127.5 - 1.0)
            ys.append(EMOTIONS_7.index(label))
    if not xs:
        raise ValueError(f"no usable face image in {images_dir} with {labels_csv}")
    return np.stack(xs), np.array(ys), skipped


def train_image(images_dir, labels_csv, imagenet_weights, out, epochs: int | None = None, seed: int = 0,
                register: bool = True) -> dict:
    """Train, export to TFLite and record; returns the metrics. ``imagenet_weights=None``
    trains from random weights (tests only)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from .frame import register_sums
    from .keras_seq import export_tflite
    from .metrics import report

    if imagenet_weights is not None and not pathlib.Path(imagenet_weights).is_file():
        raise FileNotFoundError(f"ImageNet weights {imagenet_weights} not found")
    keras.utils.set_random_seed(seed)
    t0 = time.time()
    x, y, skipped = load_crops(images_dir, labels_csv)
    rng = np.random.default_rng(seed)
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 2:
            val[rng.choice(idx, max(1, int(round(len(idx) * VAL_FRACTION))), replace=False)] = True
    counts = np.bincount(y[~val], minlength=7)
    cw = {i: float(len(y[~val]) / (7 * c)) for i, c in enumerate(counts) if c > 0}
    model = build(keras, str(imagenet_weights) if imagenet_weights else None)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[~val], y[~val], validation_data=(x[val], y[val]) if val.any() else None,
              epochs=epochs or EPOCHS, batch_size=BATCH, class_weight=cw, verbose=2)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)

    path = out / "image_mobilenetv2.tflite"
    export_tflite(tf, model, (INPUT_SIZE, INPUT_SIZE, 3), path)  # variables frozen (SavedModel route)
    metrics = report(model.predict(x[val], verbose=0), [EMOTIONS_7[i] for i in y[val]]) if val.any() else {}
    meta = {"model": "image-mobilenetv2", "class_names": list(EMOTIONS_7), "input_size": INPUT_SIZE,
            "preprocessing": "RGB / 127.5 - 1", "crop_margin": CROP_MARGIN, "images": int(len(y)),
            "skipped": int(skipped), "imagenet_weights": bool(imagenet_weights),
            "parameters": int(model.count_params()),
            "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "train_seconds": round(time.time() - t0, 1), "validation": metrics}
    mpath = out / "image_mobilenetv2.json"
    mpath.write_text(json.dumps(meta, indent=2) + "\n")
    if register:
        register_sums([path, mpath])
    print(json.dumps(meta, indent=2))
    return meta
