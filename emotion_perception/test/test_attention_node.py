"""attention_node over the real middleware (rclpy + Fast DDS, one process).

Inputs are real MediaPipe results (muxspace photos: landmarks, blendshapes, head
pose matrices) sent through the package's own conversions, as the landmark node
publishes them: one FaceMeshArray and one BlendshapesArray per image, same stamp.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rclpy.node import Node

from emotion_perception.attention import AttentionEstimator, EyeState
from emotion_perception.conversions import attention_msg_to_estimate, faces_to_msgs
from emotion_perception.nodes.qos import RESULT_QOS
from emotion_perception.runner import Pipeline
from emotion_perception.types import BoundingBox, Face
from emotion_perception_msgs.msg import AttentionArray, BlendshapesArray, FaceMeshArray
from std_msgs.msg import Header

#: Longest wait for one published array, s.
TIMEOUT_S = 10.0
#: How long "nothing is published" is watched for, s.
QUIET_S = 0.5
#: The node and the core estimator run the same float64 code; messages carry float32.
TOL = 1e-5


class Probe(Node):
    def __init__(self, context):
        super().__init__("attention_probe", context=context)
        self.mesh_pub = self.create_publisher(FaceMeshArray, "faces/mesh", RESULT_QOS)
        self.shapes_pub = self.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        self.received: list[AttentionArray] = []
        self.cv = threading.Condition()
        self.create_subscription(AttentionArray, "attention", self._on, RESULT_QOS)

    def _on(self, msg):
        with self.cv:
            self.received.append(msg)
            self.cv.notify_all()

    def wait_subscribed(self):
        deadline = time.monotonic() + TIMEOUT_S
        while self.mesh_pub.get_subscription_count() == 0 or self.shapes_pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, "attention_node did not subscribe"
            time.sleep(0.05)
        deadline = time.monotonic() + TIMEOUT_S
        while self.count_publishers("attention") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def send(self, meshes, shapes=None, shapes_first=False, expect=True) -> AttentionArray | None:
        with self.cv:
            n = len(self.received)
            if shapes_first and shapes is not None:
                self.shapes_pub.publish(shapes)
            self.mesh_pub.publish(meshes)
            if not shapes_first and shapes is not None:
                self.shapes_pub.publish(shapes)
            got = self.cv.wait_for(lambda: len(self.received) > n, TIMEOUT_S if expect else QUIET_S)
            if not expect:
                assert not got, "an array was published for input that should be dropped"
                return None
            assert got, "no AttentionArray published"
            return self.received[n]


@pytest.fixture(scope="module")
def faces(data_dir):
    idx = np.arange(0, 400, 10)
    with np.load(data_dir / "muxspace" / "features.npz", allow_pickle=False) as z:
        a = {k: z[k][idx] for k in ("landmarks", "blendshapes", "transform", "image_wh")}
    return [Face(face_id="", landmarks=a["landmarks"][j].astype(np.float32), blendshapes=a["blendshapes"][j],
                 transform=a["transform"][j], bbox=BoundingBox(0, 0, 10, 10), score=1.0,
                 image_wh=tuple(int(v) for v in a["image_wh"][j])) for j in range(len(idx))]


def header(i: int) -> Header:
    h = Header(frame_id="camera")
    h.stamp.sec, h.stamp.nanosec = 100 + i // 30, (i % 30) * 33_333_333
    return h


def frame(i, named: dict[str, Face]):
    fs = [Face(face_id=k, landmarks=f.landmarks, blendshapes=f.blendshapes, transform=f.transform, bbox=f.bbox,
               score=f.score, image_wh=f.image_wh) for k, f in named.items()]
    return faces_to_msgs(fs, header(i))


@pytest.fixture(scope="module")
def pipeline():
    # 1 s: a loaded machine must not reach it between the paired sends of one test.
    with Pipeline(["attention"], parameter_overrides={"attention": {"blendshapes_timeout_s": 1.0}}) as p:
        probe = Probe(p.context)
        p.add_node(probe)
        probe.wait_subscribed()
        yield p, probe
        probe.destroy_node()


def test_two_faces_match_the_core_and_vanished_ids_are_forgotten(pipeline, faces):
    p, probe = pipeline
    node = p.nodes["attention"]
    ref = AttentionEstimator()
    for i in range(8):
        meshes, shapes = frame(i, {"face_1": faces[i], "face_2": faces[20 + i]})
        out = probe.send(meshes, shapes, shapes_first=bool(i % 2))
        assert out.header == meshes.header
        assert [a.face_id for a in out.faces] == ["face_1", "face_2"]
        for a, f in zip(out.faces, (faces[i], faces[20 + i])):
            e = ref.update_arrays(a.face_id, f.landmarks, f.blendshapes, f.transform, f.image_wh,
                                  (100 + i // 30) + (i % 30) * 0.033333333)
            assert a.header == meshes.header
            assert a.looking_at_camera == pytest.approx(e.looking_at_camera, abs=TOL)
            assert (a.head_yaw, a.head_pitch, a.head_roll) == pytest.approx((e.head_yaw, e.head_pitch, e.head_roll),
                                                                           abs=TOL)
            assert (a.left_eye_state, a.right_eye_state, a.mouth_state) == (e.left_eye, e.right_eye, e.mouth)
            np.testing.assert_allclose(a.left_eye_probabilities, e.left_eye_probabilities, atol=TOL)
            assert a.perclos == pytest.approx(e.perclos) and a.talking == e.talking
            assert abs(np.linalg.norm([a.gaze_direction.x, a.gaze_direction.y, a.gaze_direction.z]) - 1) < 1e-5
            back = attention_msg_to_estimate(a)
            assert back.left_eye == EyeState(a.left_eye_state) and back.face_id == a.face_id
    assert sorted(node._estimator.face_ids) == ["face_1", "face_2"]
    # face_1 leaves: forgotten
    out = probe.send(*frame(8, {"face_2": faces[28]}))
    assert [a.face_id for a in out.faces] == ["face_2"]
    assert node._estimator.face_ids == ["face_2"]
    # no face: an empty array, and nothing remembered
    out = probe.send(*frame(9, {}))
    assert out.faces == [] and node._estimator.face_ids == []


def test_bad_input_is_dropped_and_the_node_runs_on(pipeline, faces):
    p, probe = pipeline
    node = p.nodes["attention"]
    # a NaN landmark: that face is dropped, the other still comes out
    meshes, shapes = frame(20, {"face_7": faces[0], "face_8": faces[1]})
    meshes.faces[0].x[5] = float("nan")
    out = probe.send(meshes, shapes)
    assert [a.face_id for a in out.faces] == ["face_8"]
    assert node._once.count("bad_mesh") >= 1
    # wrong-length blendshapes: geometry only for that face, still published
    meshes, shapes = frame(21, {"face_8": faces[2]})
    shapes.faces[0].scores = shapes.faces[0].scores[:10]
    out = probe.send(meshes, shapes)
    assert [a.face_id for a in out.faces] == ["face_8"] and node._once.count("bad_blendshapes") >= 1
    # a stamp older than the last one: dropped with one log line
    out = probe.send(*frame(5, {"face_8": faces[3]}), expect=False)
    assert node._once.count("stamp_backwards") >= 1
    # and the next good image is processed as usual
    out = probe.send(*frame(22, {"face_8": faces[4]}))
    assert [a.face_id for a in out.faces] == ["face_8"]


def test_missing_blendshapes_fall_back_to_geometry(pipeline, faces):
    p, probe = pipeline
    node = p.nodes["attention"]
    # Meshes keep coming without blendshapes for longer than blendshapes_timeout_s (a
    # pause of both is no outage: tests/test_bad_input.py checks that).
    end = time.monotonic() + 1.2
    i = 40
    while time.monotonic() < end:
        probe.mesh_pub.publish(frame(i, {"face_9": faces[5]})[0])
        i += 1
        time.sleep(0.05)
    meshes, _ = frame(i, {"face_9": faces[5]})
    out = probe.send(meshes)
    assert [a.face_id for a in out.faces] == ["face_9"]
    assert 0.0 <= out.faces[0].looking_at_camera <= 1.0
    assert node._once.count("no_blendshapes") >= 1
    # blendshapes alone (no mesh) produce nothing and break nothing
    _, shapes = frame(i + 1, {"face_9": faces[6]})
    probe.shapes_pub.publish(shapes)
    out = probe.send(*frame(i + 2, {"face_9": faces[7]}))
    assert [a.face_id for a in out.faces] == ["face_9"]


def test_bad_parameters_refuse_to_start():
    from emotion_perception.nodes.parameters import ParameterError

    with pytest.raises(ParameterError):
        with Pipeline(["attention"], parameter_overrides={"attention": {"looking_on": 0.3, "looking_off": 0.5}}):
            pass
    with pytest.raises(ParameterError):
        with Pipeline(["attention"], parameter_overrides={"attention": {"calibration_file": "/nonexistent.json"}}):
            pass


def test_landmark_and_attention_nodes_on_real_frames(video):
    """Real frames of single_face.mp4 and a picture without a face through landmark_node
    and attention_node: one AttentionArray per image, with the image's header."""
    import cv2
    from skimage import data as skdata

    from emotion_perception.conversions import rgb_to_image_msg
    from sensor_msgs.msg import Image

    cap = cv2.VideoCapture(str(video("single_face.mp4")))
    frames = []
    for _ in range(12):
        ok, bgr = cap.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    frames.append(skdata.coffee())  # no face
    # own namespace: the module's other pipeline (another attention_node) is still running
    with Pipeline(["landmark", "attention"], namespace="attention_e2e") as p:
        probe = Node("attention_image_probe", context=p.context, namespace="/attention_e2e")
        pub = probe.create_publisher(Image, "image", RESULT_QOS)
        got: list[AttentionArray] = []
        cv = threading.Condition()

        def on(msg):
            with cv:
                got.append(msg)
                cv.notify_all()

        probe.create_subscription(AttentionArray, "attention", on, RESULT_QOS)
        p.add_node(probe)
        deadline = time.monotonic() + TIMEOUT_S
        while pub.get_subscription_count() == 0 or probe.count_publishers("attention") == 0 or \
                not p.wait_inputs_settled(0.0):  # the attention node subscribes once someone listens
            assert time.monotonic() < deadline, "pipeline did not connect"
            time.sleep(0.05)
        outs = []
        for i, rgb in enumerate(frames):
            h = header(300 + i)
            with cv:
                n = len(got)
                pub.publish(rgb_to_image_msg(rgb, h))
                assert cv.wait_for(lambda: len(got) > n, 3 * TIMEOUT_S), f"no attention for image {i}"
                outs.append(got[n])
            assert outs[-1].header.stamp == h.stamp
        probe.destroy_node()
    faces = [o.faces for o in outs[:-1]]
    assert all(len(f) == 1 for f in faces)
    assert len({f[0].face_id for f in faces}) == 1  # one tracked id
    assert np.mean([f[0].looking_at_camera > 0.5 for f in faces]) > 0.5
    assert outs[-1].faces == []


def test_attention_message_conversion_rejects_bad_values(faces):
    from emotion_perception.conversions import ConversionError, attention_estimate_to_msg

    e = AttentionEstimator().update(Face(face_id="face_1", landmarks=faces[0].landmarks,
                                         blendshapes=faces[0].blendshapes, transform=faces[0].transform,
                                         bbox=faces[0].bbox, score=1.0, image_wh=faces[0].image_wh), 0.0)
    msg = attention_estimate_to_msg(e, header(0))
    back = attention_msg_to_estimate(msg)
    assert (back.left_eye, back.right_eye, back.mouth) == (e.left_eye, e.right_eye, e.mouth)
    assert back.looking_at_camera == pytest.approx(e.looking_at_camera, abs=1e-6)
    for field, value in (("left_eye_state", 7), ("mouth_state", 3), ("face_id", ""), ("perclos", 1.5)):
        bad = attention_estimate_to_msg(e, header(0))
        setattr(bad, field, value)
        with pytest.raises(ConversionError):
            attention_msg_to_estimate(bad)
    bad = attention_estimate_to_msg(e, header(0))
    bad.left_eye_probabilities[2] = float("nan")
    with pytest.raises(ConversionError):
        attention_msg_to_estimate(bad)
