"""ROS-free tests of the LiteRT wrapper on a shipped .tflite file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from emotion_perception.assets import ModelFileError
from emotion_perception.classifiers.litert import LiteRTModel


def test_runs_shipped_model_with_batch_one():
    m = LiteRTModel("image_cnn.tflite")
    assert m.input_shapes[0][0] == 1
    x = np.random.default_rng(0).random(m.input_shapes[0][1:], dtype=np.float32)
    y1, y2 = m.run(x), m.run(x[None])
    assert y1.shape == m.output_shapes[0][1:]
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError):
        m.run(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError):
        m.run(x, x)


def test_refuses_tampered_file(tmp_path):
    from emotion_perception.assets import models_dir

    p = tmp_path / "m.tflite"
    shutil.copy(models_dir() / "image_cnn.tflite", p)
    with pytest.raises(ModelFileError):
        LiteRTModel(p)  # no recorded digest
    with pytest.raises(ModelFileError):
        LiteRTModel(p, expected_sha256="0" * 64)
