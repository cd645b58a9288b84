"""Quiet by default: the commands and the nodes keep MediaPipe's and TensorFlow Lite's
native log lines off stderr, ``--verbose`` / ``EMOTION_PERCEPTION_VERBOSE=1`` show them,
and nothing else is lost (emotion_perception/quiet.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from emotion_perception.quiet import NOISE

#: Lines the native libraries print (copied from a run of `make demo` before the filter).
NATIVE = [
    b"WARNING: Logging before InitGoogle() is written to STDERR",
    b"W0000 00:00:1796128839.476226   15167 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph "
    b"acceleration to xnnpack by default.",
    b"W0000 00:00:1796128839.500597   15171 inference_feedback_manager.cc:121] Feedback manager requires a "
    b"model with a single signature inference. Disabling support for feedback tensors.",
    b"I0000 00:00:1796128839.500597   15171 gl_context.cc:369] GL version: 2.1",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]
#: Lines a user must see.
KEPT = [
    b"E0000 00:00:1796128839.500597   15171 face_landmarker_graph.cc:181] could not open the model",
    b"F0000 00:00:1796128839.500597   15171 calculator_graph.cc:12] Check failed",
    b"[INFO] [1796129228.034040003] [lstm_node]: lstm: angry, disgust -> emotion/lstm",
    b"[WARN] [1796129228.034040003] [landmark_node]: dropping an image from /image: empty",
    b"Traceback (most recent call last):",
    b"INFO: something else",
    b"emotion-perception: error: the following arguments are required: --input",
]


def test_noise_pattern_drops_native_info_and_warnings_only():
    assert all(NOISE.match(line) for line in NATIVE)
    assert not any(NOISE.match(line) for line in KEPT)


MEDIAPIPE_SCRIPT = """
import sys
from emotion_perception import quiet
quiet.install()
from skimage import data
from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions
with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
    faces = lm.process(data.astronaut(), 1_000_000_000)
print("faces", len(faces), file=sys.stderr)
print("E0000 00:00:1.0   1 x.cc:1] a native error stays", file=sys.stderr)
raise SystemExit("last words")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_mediapipe_lines_hidden_unless_verbose_and_everything_else_kept(verbose):
    env = {k: v for k, v in os.environ.items() if k != "EMOTION_PERCEPTION_VERBOSE"}
    if verbose:
        env["EMOTION_PERCEPTION_VERBOSE"] = "1"
    r = subprocess.run([sys.executable, "-c", MEDIAPIPE_SCRIPT], capture_output=True, timeout=300, env=env)
    err = r.stderr.splitlines()
    assert r.returncode == 1
    # what the program itself wrote arrives, in order, including the exit message
    mine = [line for line in err if line.startswith((b"faces", b"E0000", b"last words"))]
    assert mine == [b"faces 1", b"E0000 00:00:1.0   1 x.cc:1] a native error stays", b"last words"], err
    native = [line for line in err if NOISE.match(line)]
    if verbose:
        assert native, err  # MediaPipe does print them: the quiet run below proves something
    else:
        assert native == [], native


def test_predict_command_is_quiet_and_verbose_shows_tflite(tmp_path, data_dir):
    with np.load(data_dir / "rafdb_blendshapes" / "test.npz", allow_pickle=False) as z:
        np.savez(tmp_path / "in.npz", blendshapes=z["blendshapes"][:5], label=z["label"][:5])
    cli = os.path.join(os.path.dirname(sys.executable), "emotion-perception")
    env = {k: v for k, v in os.environ.items() if k != "EMOTION_PERCEPTION_VERBOSE"}
    base = [cli, "predict", "--model", "lstm", "--input", str(tmp_path / "in.npz")]
    quiet = subprocess.run(base + ["--output", str(tmp_path / "a.csv")], capture_output=True, timeout=300, env=env)
    loud = subprocess.run(base + ["--output", str(tmp_path / "b.csv"), "--verbose"], capture_output=True,
                          timeout=300, env=env)
    assert quiet.returncode == 0 and loud.returncode == 0, (quiet.stderr, loud.stderr)
    assert not [line for line in quiet.stderr.splitlines() if NOISE.match(line)], quiet.stderr
    assert [line for line in loud.stderr.splitlines() if NOISE.match(line)], loud.stderr
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
