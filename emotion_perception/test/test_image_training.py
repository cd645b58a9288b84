"""`emotion-perception train image-cnn` end to end on the FER+ sample of the fixtures:
a tiny network trains in seconds, an interrupted run resumes from its checkpoint, the
exported .tflite loads through the package's verified loader and its JSON holds what
the model card quotes. CI never trains the real model."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "data" / "ferplus" / "valid.npz"


@pytest.fixture()
def ferplus_dir(tmp_path) -> pathlib.Path:
    """A FER+ folder whose train and valid splits are the fixture sample."""
    d = tmp_path / "ferplus"
    d.mkdir()
    for split in ("train", "valid"):
        os.symlink(FIXTURE, d / f"{split}.npz")
    return d


def test_tiny_training_resumes_and_exports(ferplus_dir, tmp_path):
    import keras

    from emotion_perception.classifiers.litert import LiteRTModel
    from emotion_perception.training.image import Recipe, train_image_cnn

    r = Recipe(epochs=2, widths=(4, 8, 8, 8), batch=32, seed=3)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"

    class Interrupt(keras.callbacks.Callback):  # the machine stops after the first epoch
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_image_cnn(ferplus_dir, out, r, checkpoint_dir=ckpt, callbacks=[Interrupt()], progress=False)
    assert not (out / "image_cnn.tflite").exists()
    meta = train_image_cnn(ferplus_dir, out, r, checkpoint_dir=ckpt, progress=False)
    epochs = [json.loads(ln)["epoch"] for ln in (ckpt / "progress.jsonl").read_text().splitlines()]
    assert epochs == [1, 2], "the second run must resume at epoch 2, not start again"

    sums = (out / "SHA256SUMS").read_text()
    assert "image_cnn.tflite" in sums and "image_cnn.json" in sums
    assert (out / "image_cnn_confusion.png").stat().st_size > 1000
    assert meta["recipe"]["seed"] == 3 and meta["wall_s_training"] > 0
    v = meta["valid"]
    assert v["majority"]["n"] == 120 and set(v["majority"]["recall"]) >= {"angry", "happy"}
    assert np.array(v["majority"]["confusion"]).sum() == 120
    # every export considered is scored the same way (the card's quantisation table)
    assert set(meta["exports_compared"]) == {"float32", "float16", "int8 (shipped)", "float16, no mirrored crop",
                                             "int8, no mirrored crop"}
    assert meta["quantisation"] == "int8" and meta["epochs_logged"] == 2
    assert v["test_fixture_sample"]["n"] == 120 and len(v["test_fixture_sample"]["predicted"]) == 120
    model = LiteRTModel(out / "image_cnn.tflite")  # verified against the SHA256SUMS written beside it
    assert model.input_shapes == [(1, meta["input_size"], meta["input_size"], 1)]
    p = model.run(np.full((48, 48, 1), 128, np.float32))
    assert p.shape == (7,) and abs(float(p.sum()) - 1) < 0.02  # int8 output steps; the classifier renormalises

    # the same recipe with other settings must not silently reuse these checkpoints
    with pytest.raises(ValueError, match="another recipe"):
        train_image_cnn(ferplus_dir, out, Recipe(epochs=3, widths=(4, 8, 8, 8)), checkpoint_dir=ckpt,
                        progress=False)


def test_train_command_line_quick(ferplus_dir, tmp_path):
    from emotion_perception.cli import main

    out = tmp_path / "out"
    assert main(["train", "image-cnn", "--quick", "--data", str(ferplus_dir), "--out", str(out),
                 "--checkpoint-dir", str(tmp_path / "ck"), "--no-tta", "--quant", "float32"]) == 0
    meta = json.loads((out / "image_cnn.json").read_text())
    assert meta["quantisation"] == "float32" and meta["tta_flip"] is False and meta["recipe"]["epochs"] == 1


def test_soft_targets_and_majority_labels():
    from emotion_perception.training.ferplus import majority_labels, official_subset, soft_targets
    from emotion_perception.types import EMOTIONS_7

    votes = np.array([[6, 0, 0, 0, 4, 0, 0, 0, 0, 0],   # neutral 6, anger 4
                      [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],   # a tie: no majority
                      [1, 0, 0, 0, 0, 0, 0, 7, 2, 0],   # contempt: not trained on
                      [0, 0, 0, 4, 0, 0, 1, 0, 0, 5]], np.float32)  # sad 4 fear 1 NF 5: usable (half)
    t, usable = soft_targets(votes)
    assert usable.tolist() == [True, True, False, True]
    assert t[0][EMOTIONS_7.index("neutral")] == pytest.approx(0.6) and t[0].sum() == pytest.approx(1)
    assert t[3][EMOTIONS_7.index("sad")] == pytest.approx(0.8)
    assert majority_labels(votes).tolist() == [EMOTIONS_7.index("neutral"), -1, -1, -1]
    assert official_subset(votes).tolist() == [True, False, False, False]
