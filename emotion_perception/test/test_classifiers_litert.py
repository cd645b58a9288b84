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


def test_pool_threads_carry_their_own_name_and_the_caller_keeps_its_own():
    """LiteRT starts its pool when an interpreter is made; its threads take their
    creator's operating-system name. They are named "litert" (top -H, the benchmarks'
    per-thread CPU), the calling thread keeps its name."""
    import os
    import sys
    import threading

    from emotion_perception.classifiers.litert import THREAD_NAME
    from emotion_perception.os_threads import name_os_thread, os_thread_name

    if not sys.platform.startswith("linux"):
        pytest.skip("thread names come from Linux's prctl and /proc")

    def names() -> dict[int, str]:
        out = {}
        for t in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{t}/comm") as f:
                    out[int(t)] = f.read().strip()
            except FileNotFoundError:  # a thread that ended meanwhile
                pass
        return out

    got = {}

    def build():
        name_os_thread("litert-test")
        before = names()
        got["model"] = LiteRTModel("image_cnn.tflite", num_threads=2)
        got["new"] = {tid: n for tid, n in names().items() if tid not in before}
        got["mine"] = os_thread_name()

    t = threading.Thread(target=build)
    t.start()
    t.join()
    assert THREAD_NAME in got["new"].values(), got["new"]
    assert got["mine"] == "litert-test"
