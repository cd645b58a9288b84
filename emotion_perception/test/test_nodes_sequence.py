"""transformer_node and lstm_node over the real middleware (rclpy + Fast DDS, one process).

Real inputs: MediaPipe blendshapes of RAF-DB test faces and landmarks of muxspace
photos, sent as the landmark node would (one array per image, ids per face).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rclpy.node import Node

from emotion_perception import classifiers
from emotion_perception.classifiers.base import FrameInput
from emotion_perception.nodes.qos import RESULT_QOS
from emotion_perception.runner import Pipeline
from emotion_perception_msgs.msg import Blendshapes, BlendshapesArray, EmotionArray, FaceMesh, FaceMeshArray

#: How long to wait for one published array, seconds.
TIMEOUT_S = 10.0
#: LiteRT on the same input gives the same numbers; allow float round-off only.
PROB_TOL = 1e-5


class Probe(Node):
    """Publishes input arrays one at a time and waits for each output array."""

    def __init__(self, context, in_type, in_topic, out_topic):
        super().__init__("probe", context=context)
        self.pub = self.create_publisher(in_type, in_topic, RESULT_QOS)
        self.received: list[EmotionArray] = []
        self.cv = threading.Condition()
        self.create_subscription(EmotionArray, out_topic, self._on, RESULT_QOS)

    def _on(self, msg):
        with self.cv:
            self.received.append(msg)
            self.cv.notify_all()

    def send(self, msg) -> EmotionArray:
        with self.cv:
            n = len(self.received)
            self.pub.publish(msg)
            assert self.cv.wait_for(lambda: len(self.received) > n, TIMEOUT_S), "no EmotionArray published"
            return self.received[n]


def _header(msg, i):
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i // 30, (i % 30) * 33_333_333
    msg.header.frame_id = "camera"
    return msg


def _blendshapes_array(i, faces: dict[str, np.ndarray]):
    arr = _header(BlendshapesArray(), i)
    for fid, scores in faces.items():
        arr.faces.append(Blendshapes(header=arr.header, face_id=fid, scores=[float(v) for v in scores]))
    return arr


def _mesh_array(i, faces: dict[str, np.ndarray], wh):
    arr = _header(FaceMeshArray(), i)
    for fid, lm in faces.items():
        m = FaceMesh(header=arr.header, face_id=fid, image_width=int(wh[0]), image_height=int(wh[1]))
        m.x, m.y, m.z = (lm[:, k].astype(float).tolist() for k in range(3))
        m.score = 1.0
        arr.faces.append(m)
    return arr


def _wait_subscribed(probe):
    deadline = time.monotonic() + TIMEOUT_S
    while probe.pub.get_subscription_count() == 0:
        assert time.monotonic() < deadline, "node did not subscribe"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def raf(data_dir):
    d = np.load(data_dir / "rafdb_blendshapes" / "test.npz", allow_pickle=False)
    b, y = d["blendshapes"], d["label"]
    return b[np.flatnonzero(y == "happy")[:12]], b[np.flatnonzero(y == "sad")[:12]]


@pytest.fixture(scope="module")
def mux(data_dir):
    d = np.load(data_dir / "muxspace" / "features.npz", allow_pickle=False)
    y = d["label"]
    i_h, i_n = np.flatnonzero(y == "happy")[:12], np.flatnonzero(y == "neutral")[:12]
    return d["landmarks"][i_h].astype(np.float32), d["landmarks"][i_n].astype(np.float32), d["image_wh"]


def _run_two_faces(pipeline, probe, make, a_frames, b_frames, reference, make_input):
    """Two faces at once, then face_1 leaves and returns; checks every published array."""
    _wait_subscribed(probe)
    n = 6
    for i in range(n):
        out = probe.send(make(i, {"face_1": a_frames[i], "face_2": b_frames[i]}))
        assert [e.face_id for e in out.emotions] == ["face_1", "face_2"]
        assert out.header.stamp == make(i, {}).header.stamp
        for e, frames in zip(out.emotions, (a_frames, b_frames)):
            # the node's answer equals the core model fed this face's frames only
            ref = reference.update(e.face_id, make_input(frames[i]))
            np.testing.assert_allclose(e.probabilities, ref.probabilities, atol=PROB_TOL)
            assert e.frames_used == min(i + 1, reference.span)
            assert abs(sum(e.probabilities) - 1) < 1e-4 and e.label == ref.label
    # face_1 leaves: its buffer is dropped; face_2 continues
    out = probe.send(make(n, {"face_2": b_frames[n]}))
    assert [e.face_id for e in out.emotions] == ["face_2"] and out.emotions[0].frames_used == min(n + 1, reference.span)
    # face_1 comes back: starts from one frame, not confident
    out = probe.send(make(n + 1, {"face_1": a_frames[n + 1]}))
    assert out.emotions[0].face_id == "face_1" and out.emotions[0].frames_used == 1
    assert not out.emotions[0].confident
    # no face at all: an empty array, still published
    assert probe.send(make(n + 2, {})).emotions == []


def test_lstm_node_keeps_faces_apart_and_resets(raf):
    happy, sad = raf
    with Pipeline(["lstm"]) as p:
        probe = Probe(p.context, BlendshapesArray, "faces/blendshapes", "emotion/lstm")
        p.add_node(probe)
        ref = classifiers.load("lstm")
        _run_two_faces(p, probe, _blendshapes_array, happy, sad, ref, lambda b: FrameInput(blendshapes=b))
        # bad input: a wrong-length and a NaN face are dropped, the good one is answered
        bad = _blendshapes_array(50, {"face_9": happy[0]})
        bad.faces.append(Blendshapes(header=bad.header, face_id="face_8", scores=[0.1] * 10))
        bad.faces.append(Blendshapes(header=bad.header, face_id="face_7", scores=[float("nan")] * 52))
        out = probe.send(bad)
        assert [e.face_id for e in out.emotions] == ["face_9"]
        assert p.nodes["lstm"].diagnostics.errors_total == 2
        assert out.emotions[0].model == "lstm" and len(out.emotions[0].class_names) == 7


def test_lstm_node_three_class_head(raf):
    happy, _ = raf
    with Pipeline(["lstm"], parameter_overrides={"lstm": {"model": "lstm-3class"}}) as p:
        probe = Probe(p.context, BlendshapesArray, "faces/blendshapes", "emotion/lstm")
        p.add_node(probe)
        _wait_subscribed(probe)
        out = probe.send(_blendshapes_array(0, {"face_1": happy[0]}))
        assert list(out.emotions[0].class_names) == ["happy", "sad", "unknown"]
        assert out.emotions[0].model == "lstm-3class"


def test_transformer_node_keeps_faces_apart_and_resets(mux):
    happy, neutral, wh = mux
    size = (640, 480)  # landmarks are normalised; any fixed size is a valid image
    with Pipeline(["transformer"]) as p:
        probe = Probe(p.context, FaceMeshArray, "faces/mesh", "emotion/transformer")
        p.add_node(probe)
        ref = classifiers.load("transformer")
        _run_two_faces(p, probe, lambda i, f: _mesh_array(i, f, size), happy, neutral, ref,
                       lambda lm: FrameInput(landmarks=lm, image_wh=size))
        bad = _mesh_array(60, {"face_9": happy[0]}, size)
        short = FaceMesh(header=bad.header, face_id="face_8", image_width=640, image_height=480)
        short.x = short.y = short.z = [0.5] * 100
        bad.faces.append(short)
        out = probe.send(bad)
        assert [e.face_id for e in out.emotions] == ["face_9"]
        assert list(out.emotions[0].class_names) == ["angry", "disgust", "fear", "happy", "neutral", "sad"]


def test_real_clip_through_landmark_transformer_and_lstm_nodes(video):
    """A real clip in which the face leaves the picture: landmark node -> both sequence
    nodes. Every image gets an EmotionArray on both topics; while the face is tracked its
    buffer grows frame by frame and becomes confident; once it has left the arrays are
    empty and its buffers are gone."""
    import cv2

    from pipeline_probe import Probe as ImageProbe

    cap = cv2.VideoCapture(str(video("face_noface.mp4")))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (480, 270)), cv2.COLOR_BGR2RGB))
    frames = frames[::2]
    topics = ("faces/mesh", "emotion/transformer", "emotion/lstm")
    with Pipeline(["landmark", "transformer", "lstm"]) as p:
        probe = ImageProbe(p, topics)
        assert p.wait_inputs_settled(), "the listened-to nodes did not subscribe"  # nodes/lazy.py
        seen = []
        for i, rgb in enumerate(frames):
            stamp = 2_000_000_000 + i * 66_666_667
            assert probe.send_until_served(rgb, stamp, tries=3, timeout=15.0) is not None
            assert probe.wait_all(topics[1:], stamp, timeout=10.0), f"no emotion arrays for frame {i}"
            mesh = probe.got["faces/mesh"][stamp][0]
            tr = probe.got["emotion/transformer"][stamp][0]
            ls = probe.got["emotion/lstm"][stamp][0]
            ids = [f.face_id for f in mesh.faces]
            assert [e.face_id for e in tr.emotions] == ids and [e.face_id for e in ls.emotions] == ids
            seen.append(ids)
            for e in (*tr.emotions, *ls.emotions):
                assert abs(sum(e.probabilities) - 1) < 1e-3 and e.header.stamp == mesh.header.stamp
        with_face = [i for i, ids in enumerate(seen) if ids]
        assert len(with_face) >= 20 and not seen[-1], "the clip must show the face, then no face"
        first = with_face[0]
        fid = seen[first][0]
        run = [i for i in with_face if seen[i] == [fid]]
        counts = [probe.got["emotion/lstm"][2_000_000_000 + i * 66_666_667][0].emotions[0].frames_used
                  for i in run[:8]]
        assert counts == list(range(1, len(counts) + 1))
        last = probe.got["emotion/transformer"][2_000_000_000 + run[-1] * 66_666_667][0].emotions[0]
        assert last.confident and last.frames_used >= 10
        assert p.nodes["transformer"].model.faces() == [] and p.nodes["lstm"].model.faces() == []
