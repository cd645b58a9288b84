"""frame_node, image_emotion_node and emotion_fusion_node over the real middleware
(rclpy + Fast DDS, one process).

Real photos go through the real landmark node into the frame and image nodes and on
into the fusion node; the fusion node is also fed EmotionArrays directly to show it
publishes with an input missing or stale and forgets a face id that disappears.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from conftest import own_ros_domain_fixture, read_rgb
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from emotion_perception import conversions
from emotion_perception.nodes.parameters import ParameterError
from emotion_perception.nodes.qos import RESULT_QOS
from emotion_perception.nodes.stamps import stamp_ns
from emotion_perception.runner import Pipeline
from emotion_perception.types import EMOTIONS_6, EMOTIONS_7, EmotionEstimate
from emotion_perception_msgs.msg import EmotionArray

ANSWER_TIMEOUT_S = 20.0
REPEAT_S = 0.3
FRAME_NS = 40_000_000
OUTPUTS = ("emotion/frame", "emotion/image", "emotion")
#: The fusion node's ``inputs`` parameter naming every member.
ALL_INPUTS = "emotion/transformer,emotion/lstm,emotion/frame,emotion/image"
_stamps = itertools.count(1)


#: This module's DDS domain: 80 + pid % 20 (other test runs on the machine publish
#: /image, /rosout and /diagnostics too).
own_ros_domain = own_ros_domain_fixture(80, 20)


def next_header() -> Header:
    t_ns = 2000 * 10**9 + next(_stamps) * FRAME_NS
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = divmod(t_ns, 10**9)
    return h


class Probe:
    def __init__(self, pipeline: Pipeline, compressed: bool = False):
        self.node = Node("probe", context=pipeline.context)
        self.cond = threading.Condition()
        self.got: dict[str, dict[int, EmotionArray]] = {t: {} for t in OUTPUTS}
        self.all_fused: list[EmotionArray] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(CompressedImage if compressed else Image,
                                                    "image/compressed" if compressed else "image", reliable)
        self.emotion_pubs = {t: self.node.create_publisher(EmotionArray, t, RESULT_QOS)
                             for t in ("emotion/transformer", "emotion/lstm", "emotion/frame", "emotion/image")}
        for t in OUTPUTS:
            self.node.create_subscription(EmotionArray, t, self._store(t), RESULT_QOS)
        pipeline.add_node(self.node)

    def _store(self, topic):
        def cb(msg):
            with self.cond:
                self.got[topic][stamp_ns(msg.header)] = msg
                if topic == "emotion":
                    self.all_fused.append(msg)
                self.cond.notify_all()
        return cb

    def ask_image(self, make_msg, topics=OUTPUTS) -> dict[str, EmotionArray]:
        header = next_header()
        key = stamp_ns(header)
        msg = make_msg(header)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            self.image_pub.publish(msg)
            with self.cond:
                if self.cond.wait_for(lambda: all(key in self.got[t] for t in topics), timeout=REPEAT_S):
                    return {t: self.got[t][key] for t in topics}
        raise AssertionError(f"no answer for stamp {key}: " + ", ".join(f"{t} {key in self.got[t]}" for t in topics))

    def wait_fusion_subscribed(self) -> None:
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not all(pub.get_subscription_count() for pub in self.emotion_pubs.values()):
            assert time.monotonic() < deadline, "the fusion node did not subscribe"
            time.sleep(0.05)

    def wait_fused(self, header) -> EmotionArray:
        key = stamp_ns(header)
        with self.cond:
            assert self.cond.wait_for(lambda: key in self.got["emotion"], timeout=ANSWER_TIMEOUT_S), \
                f"no fused array at {key}"
            return self.got["emotion"][key]

    def send_emotions(self, topic, estimates, header) -> EmotionArray:
        """Publish an EmotionArray and wait for the fused array with that stamp."""
        pub = self.emotion_pubs[topic]
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"nobody subscribes {topic}"
            time.sleep(0.05)
        pub.publish(conversions.estimates_to_emotion_array(estimates, header))
        return self.wait_fused(header)


def test_real_photos_through_landmark_frame_image_and_fusion_nodes(muxspace_images):
    with Pipeline(["landmark", "frame", "image_emotion", "emotion_fusion"]) as p:
        probe = Probe(p)
        correct = {"emotion/frame": 0, "emotion/image": 0, "emotion": 0}
        photos = muxspace_images[::6]  # one per class
        for path, label in photos:
            rgb = read_rgb(path)
            out = probe.ask_image(lambda h: conversions.rgb_to_image_msg(rgb, h))
            for t, arr in out.items():
                assert len(arr.emotions) == 1, (t, path.name)
                e = arr.emotions[0]
                assert list(e.class_names) == list(EMOTIONS_7) and abs(sum(e.probabilities) - 1) < 1e-3
                assert e.face_id == out["emotion/frame"].emotions[0].face_id
                correct[t] += e.label == label
            assert out["emotion/frame"].emotions[0].model == "svm-landmarks"
            assert out["emotion/image"].emotions[0].model == "image-cnn"
            fused = out["emotion"].emotions[0]
            assert fused.model == "fused" and -1 <= fused.valence <= 1 and -1 <= fused.arousal <= 1
        assert all(c >= 1 for c in correct.values()), correct
        # an image without a face: every output says "no face" with an empty array
        blank = np.full((240, 320, 3), 127, np.uint8)
        out = probe.ask_image(lambda h: conversions.rgb_to_image_msg(blank, h), ("emotion/frame", "emotion/image"))
        assert out["emotion/frame"].emotions == [] and out["emotion/image"].emotions == []


def test_image_node_gets_crops_of_compressed_images_and_frame_node_runs_blendshape_svm(muxspace_images):
    overrides = {"frame": {"model": "svm-blendshapes"}, "landmark": {"use_compressed": True}}
    with Pipeline(["landmark", "frame", "image_emotion"], parameter_overrides=overrides) as p:
        probe = Probe(p, compressed=True)
        rgb = read_rgb(muxspace_images[18][0])
        out = probe.ask_image(lambda h: conversions.rgb_to_compressed_msg(rgb, h), ("emotion/frame", "emotion/image"))
        assert out["emotion/frame"].emotions[0].model == "svm-blendshapes"
        assert len(out["emotion/image"].emotions) == 1


def test_a_real_face_clip_gets_image_model_estimates_from_aligned_crops(video):
    """A real video through landmark_node -> faces/crops -> image_emotion_node: every
    frame with a face gets one image-cnn estimate under the face's id, from a mono8
    crop of the shipped model's size; the node never subscribes to the camera."""
    import cv2

    from emotion_perception.classifiers.image_cnn import crop_spec
    from emotion_perception_msgs.msg import FaceCropArray, FaceMeshArray

    spec = crop_spec()
    with Pipeline(["landmark", "image_emotion"]) as p:
        probe = Probe(p)
        crops, meshes = {}, {}
        probe.node.create_subscription(FaceCropArray, "faces/crops", lambda m: crops.__setitem__(stamp_ns(m.header), m),
                                       RESULT_QOS)
        probe.node.create_subscription(FaceMeshArray, "faces/mesh", lambda m: meshes.__setitem__(stamp_ns(m.header), m),
                                       RESULT_QOS)
        cap = cv2.VideoCapture(str(video("single_face.mp4")))
        answered = []
        for _ in range(24):
            ok, bgr = cap.read()
            assert ok
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            answered.append(probe.ask_image(lambda h: conversions.rgb_to_image_msg(rgb, h), ("emotion/image",)))
        cap.release()
        ids = set()
        for out in answered:
            arr = out["emotion/image"]
            key = stamp_ns(arr.header)
            assert len(arr.emotions) == 1 and arr.emotions[0].model == "image-cnn"
            ids.add(arr.emotions[0].face_id)
            c = crops[key].faces[0]
            assert c.face_id == arr.emotions[0].face_id == meshes[key].faces[0].face_id
            assert (c.image.encoding, c.image.width, c.image.height) == ("mono8", spec.size, spec.size)
            assert c.margin == pytest.approx(spec.margin) and c.side > 20
            assert np.frombuffer(bytes(c.image.data), np.uint8).std() > 10  # a face, not a blank
        assert len(ids) == 1, f"one face, one id: {ids}"
        topics = {sub.topic_name for sub in p.nodes["image_emotion"].subscriptions}
        assert topics == {"/faces/crops"}, f"image_emotion_node subscribes {topics}, not the camera"


def _est(face, model, label, classes=EMOTIONS_7, strength=0.8):
    p = np.full(len(classes), (1 - strength) / (len(classes) - 1), np.float32)
    p[classes.index(label)] = strength
    return EmotionEstimate(face_id=face, class_names=classes, probabilities=p, model=model)


def test_fusion_node_missing_and_stale_inputs_and_vanished_faces():
    overrides = {"emotion_fusion": {"stale_after_s": 0.5, "smoothing_tau_s": 0.0, "warmup_s": 0.0}}
    with Pipeline(["emotion_fusion"], parameter_overrides=overrides) as p:
        probe = Probe(p)
        # only the transformer runs (6 classes, no surprise): the fusion still publishes 7 classes
        h = next_header()
        fused = probe.send_emotions("emotion/transformer", [_est("face_1", "transformer", "sad", EMOTIONS_6)], h)
        assert [e.face_id for e in fused.emotions] == ["face_1"]
        assert list(fused.emotions[0].class_names) == list(EMOTIONS_7) and fused.emotions[0].label == "sad"
        # the frame model joins with another face
        h = next_header()
        fused = probe.send_emotions("emotion/frame", [_est("face_1", "svm-landmarks", "sad"),
                                                      _est("face_2", "svm-landmarks", "happy")], h)
        assert {e.face_id: e.label for e in fused.emotions} == {"face_1": "sad", "face_2": "happy"}
        # 2 s later only the frame model speaks: the transformer's old input is stale and dropped,
        # face_2 vanished from the frame model's array and is forgotten
        h2 = Header(frame_id="camera_optical")
        t = stamp_ns(h) + 2 * 10**9
        h2.stamp.sec, h2.stamp.nanosec = divmod(t, 10**9)
        fused = probe.send_emotions("emotion/frame", [_est("face_1", "svm-landmarks", "angry")], h2)
        assert [e.face_id for e in fused.emotions] == ["face_1"]
        assert fused.emotions[0].label == "angry"  # the stale transformer's "sad" no longer counts
        node = p.nodes["emotion_fusion"]
        assert node.fusion.face_ids == ["face_1"]
        # no face at all: an empty fused array
        h3 = next_header()
        t = stamp_ns(h2) + FRAME_NS
        h3.stamp.sec, h3.stamp.nanosec = divmod(t, 10**9)
        fused = probe.send_emotions("emotion/frame", [], h3)
        assert fused.emotions == [] and node.fusion.face_ids == []
        # bad input (probabilities not a distribution) is dropped, the node keeps running
        bad = conversions.estimates_to_emotion_array([_est("face_9", "svm-landmarks", "happy")], next_header())
        bad.emotions[0].probabilities = [0.9] * 7
        probe.emotion_pubs["emotion/frame"].publish(bad)
        h4 = next_header()
        t = stamp_ns(h3) + 2 * FRAME_NS
        h4.stamp.sec, h4.stamp.nanosec = divmod(t, 10**9)
        fused = probe.send_emotions("emotion/frame", [_est("face_3", "svm-landmarks", "fear")], h4)
        assert [e.face_id for e in fused.emotions] == ["face_3"]


def test_fusion_node_publishes_every_image_in_order_when_arrays_interleave():
    """At high rates one model delivers image k+1 before another delivers image k:
    both images are still fused and published, once each and in image order."""
    overrides = {"emotion_fusion": {"stale_after_s": 0.5, "max_wait_s": 1.0, "smoothing_tau_s": 0.0,
                                    "warmup_s": 0.0, "inputs": ALL_INPUTS}}
    with Pipeline(["emotion_fusion"], parameter_overrides=overrides) as p:
        probe = Probe(p)
        probe.wait_fusion_subscribed()
        h0 = next_header()
        for topic, model in (("emotion/lstm", "lstm"), ("emotion/image", "image-cnn"),
                             ("emotion/transformer", "transformer")):
            probe.emotion_pubs[topic].publish(conversions.estimates_to_emotion_array(
                [_est("face_1", model, "sad", EMOTIONS_6 if model == "transformer" else EMOTIONS_7)], h0))
        probe.send_emotions("emotion/frame", [_est("face_1", "svm-landmarks", "sad")], h0)
        # then only the transformer and the frame model run: 0.3 s later they deliver an
        # image, 0.7 s later (lstm/image now stale) two images whose arrays interleave
        hb, h1, h2 = (Header(frame_id="camera_optical") for _ in range(3))
        for h, dt in ((hb, 300_000_000), (h1, 700_000_000), (h2, 700_000_000 + FRAME_NS)):
            h.stamp.sec, h.stamp.nanosec = divmod(stamp_ns(h0) + dt, 10**9)
        probe.emotion_pubs["emotion/transformer"].publish(conversions.estimates_to_emotion_array(
            [_est("face_1", "transformer", "sad", EMOTIONS_6)], hb))
        probe.send_emotions("emotion/frame", [_est("face_1", "svm-landmarks", "sad")], hb)
        sent = time.monotonic()
        for topic, model, label, h in (("emotion/transformer", "transformer", "happy", h1),
                                       ("emotion/transformer", "transformer", "happy", h2),
                                       ("emotion/frame", "svm-landmarks", "happy", h1),
                                       ("emotion/frame", "svm-landmarks", "happy", h2)):
            classes = EMOTIONS_6 if model == "transformer" else EMOTIONS_7
            probe.emotion_pubs[topic].publish(conversions.estimates_to_emotion_array(
                [_est("face_1", model, label, classes)], h))
        keys = [stamp_ns(h1), stamp_ns(h2)]
        with probe.cond:
            assert probe.cond.wait_for(lambda: all(k in probe.got["emotion"] for k in keys), timeout=ANSWER_TIMEOUT_S), \
                f"fused arrays: {[k in probe.got['emotion'] for k in keys]}"
            order = [stamp_ns(m.header) for m in probe.all_fused if stamp_ns(m.header) in keys]
        assert order == keys, f"published {order}, expected each image once in order"
        assert time.monotonic() - sent < 1.0, "waited for max_wait_s although both running models had delivered"
        assert probe.got["emotion"][keys[1]].emotions[0].label == "happy"


def test_fusion_node_subscribes_to_the_members_that_carry_weight():
    """By default the fusion node subscribes to every member until it has named its
    model, then only to those whose weight in fusion.json's profile for the running
    models is not 0 (the others then have no subscriber and sleep); when a member's
    publisher leaves, the profile for the remaining ones decides again. The `inputs`
    parameter overrides the choice; an unknown topic there is refused."""
    from emotion_perception.fusion import load_params
    from emotion_perception.nodes.parameters import ParameterError

    pooling, _ = load_params()
    members = {"emotion/transformer": "transformer", "emotion/lstm": "lstm", "emotion/frame": "svm-landmarks",
               "emotion/image": "image-cnn"}

    def expected(running):
        weighted = pooling.weighted_models({members[t] for t in running})
        return {t for t in running if members[t] in weighted}

    def publish(probe, topic, h):
        classes = EMOTIONS_6 if members[topic] == "transformer" else EMOTIONS_7
        probe.emotion_pubs[topic].publish(conversions.estimates_to_emotion_array(
            [_est("face_1", members[topic], "sad", classes)], h))

    def subscribed(probe):  # the fusion node's subscriptions (the probe itself records OUTPUTS)
        return {t for t, pub in probe.emotion_pubs.items() if pub.get_subscription_count() > (t in OUTPUTS)}

    with Pipeline(["emotion_fusion"]) as p:
        probe = Probe(p)
        probe.wait_fusion_subscribed()  # nothing known yet: every member
        node = p.nodes["emotion_fusion"]
        want = expected(members)
        assert want and want != set(members), "fusion.json gives every member weight: nothing to test"
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not (set(node.inputs.subs) == want and subscribed(probe) == want):
            assert time.monotonic() < deadline, (sorted(node.inputs.subs), sorted(subscribed(probe)), sorted(want))
            h = next_header()
            for topic in members:
                if topic in node.inputs.subs:
                    publish(probe, topic, h)
            time.sleep(0.1)
        # a weighted member's node leaves: the remaining ones are weighed again
        gone = sorted(want)[0]
        probe.node.destroy_publisher(probe.emotion_pubs.pop(gone))
        rest = [t for t in members if t != gone]
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while not {t for t in rest if t in node.inputs.subs} >= expected(rest):
            assert time.monotonic() < deadline, (sorted(node.inputs.subs), sorted(expected(rest)))
            h = next_header()
            for topic in rest:
                if topic in node.inputs.subs:
                    publish(probe, topic, h)
            time.sleep(0.1)
    with Pipeline(["emotion_fusion"], parameter_overrides={"emotion_fusion": {"inputs": "emotion/lstm"}}) as p:
        assert set(p.nodes["emotion_fusion"].inputs.subs) == {"emotion/lstm"}
    with pytest.raises(ParameterError, match="inputs: unknown topic"):
        Pipeline(["emotion_fusion"], parameter_overrides={"emotion_fusion": {"inputs": "emotion/nope"}}).start()


def test_fusion_node_does_not_wait_for_models_that_cannot_change_the_result():
    """With the image model and the LSTM running, the shipped pooling gives the
    transformer and svm-landmarks weight 0 in every profile a stream can reach (the
    LSTM carries weight in the stream profile): the fused array of an image goes out as
    soon as the image model's and the LSTM's arrays are in, not after the weight-0
    models' (their processing stays off the path of `emotion`), and their later arrays
    publish nothing more. A frame model the profile weighs (svm-blendshapes) is still
    waited for."""
    # every member named: the weight-0 ones are fused (and waited for where they matter) too
    # max_wait_s at its maximum: an output that waited for a model comes only when that
    # timer fires, after 1 s; one that did not is out well before, busy machine included
    overrides = {"emotion_fusion": {"max_wait_s": 1.0, "smoothing_tau_s": 0.0, "warmup_s": 0.0,
                                    "inputs": ALL_INPUTS}}
    members = {"emotion/transformer": "transformer", "emotion/lstm": "lstm", "emotion/frame": "svm-landmarks",
               "emotion/image": "image-cnn"}

    def publish(topic, model, label, h):
        classes = EMOTIONS_6 if model == "transformer" else EMOTIONS_7
        estimates = [_est("face_1", model, label, classes)]
        probe.emotion_pubs[topic].publish(conversions.estimates_to_emotion_array(estimates, h))

    with Pipeline(["emotion_fusion"], parameter_overrides=overrides) as p:
        probe = Probe(p)
        probe.wait_fusion_subscribed()
        h0 = next_header()
        for topic, model in members.items():  # every model has spoken once: the node knows who runs
            publish(topic, model, "sad", h0)
        with probe.cond:
            assert probe.cond.wait_for(lambda: stamp_ns(h0) in probe.got["emotion"], timeout=ANSWER_TIMEOUT_S)
        from emotion_perception.fusion import load_params
        assert load_params()[0].weighted_models(members.values()) == {"image-cnn", "lstm"}

        def publish_lstm(h, faces):
            probe.emotion_pubs["emotion/lstm"].publish(conversions.estimates_to_emotion_array(
                [_est(f, "lstm", label) for f, label in faces.items()], h))

        h1 = next_header()
        publish_lstm(h1, {"face_1": "angry"})
        sent = time.monotonic()
        fused = probe.send_emotions("emotion/image", [_est("face_1", "image-cnn", "happy")], h1)
        assert time.monotonic() - sent < 0.9, "waited for models whose weight is 0"
        assert fused.emotions[0].label == "happy"
        for topic, model in members.items():
            if topic not in ("emotion/image", "emotion/lstm"):
                publish(topic, model, "angry", h1)
        h2 = next_header()
        publish_lstm(h2, {"face_1": "angry"})
        probe.send_emotions("emotion/image", [_est("face_1", "image-cnn", "happy")], h2)
        with probe.cond:
            published = [stamp_ns(m.header) for m in probe.all_fused]
        assert published.count(stamp_ns(h1)) == 1, "an image published twice"
        # a face the image model has no crop for (too small) but the others see: the node
        # waits for their arrays of the image, and the face stays in `emotion`
        node = p.nodes["emotion_fusion"]
        others = {t: m for t, m in members.items() if t not in ("emotion/image", "emotion/lstm")}

        def publish_others(h, faces):
            for topic, model in others.items():
                classes = EMOTIONS_6 if model == "transformer" else EMOTIONS_7
                probe.emotion_pubs[topic].publish(conversions.estimates_to_emotion_array(
                    [_est(f, model, label, classes) for f, label in faces.items()], h))

        def wait_latest(h):
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while not all(node._latest.get(t, ((0, 0), set()))[0] == (stamp_ns(h), 0) for t in others):
                assert time.monotonic() < deadline, "the arrays never reached the fusion node"
                time.sleep(0.02)

        publish_others(h2, {"face_1": "angry", "face_2": "sad"})
        wait_latest(h2)
        h4 = next_header()
        publish_lstm(h4, {"face_1": "angry"})
        publish("emotion/image", "image-cnn", "happy", h4)
        time.sleep(0.3)
        with probe.cond:
            assert stamp_ns(h4) not in probe.got["emotion"], "published before the models that see face_2"
        publish_others(h4, {"face_1": "angry", "face_2": "sad"})
        fused = probe.wait_fused(h4)
        assert {e.face_id: e.label for e in fused.emotions} == {"face_1": "happy", "face_2": "sad"}
        # face_2 leaves: gone from `emotion` at the first image without it
        h5 = next_header()
        publish_lstm(h5, {"face_1": "angry"})
        publish("emotion/image", "image-cnn", "happy", h5)
        publish_others(h5, {"face_1": "angry"})
        fused = probe.wait_fused(h5)
        assert [e.face_id for e in fused.emotions] == ["face_1"]
        # every face leaves: the image model's empty array waits for the others' too
        wait_latest(h5)
        h6 = next_header()
        publish_lstm(h6, {})
        probe.emotion_pubs["emotion/image"].publish(conversions.estimates_to_emotion_array([], h6))
        time.sleep(0.3)
        with probe.cond:
            assert stamp_ns(h6) not in probe.got["emotion"], "published while the others last saw face_1"
        publish_others(h6, {})
        assert probe.wait_fused(h6).emotions == []
        wait_latest(h6)
        # and with nothing to settle, the image model's array alone publishes again
        h7 = next_header()
        publish_lstm(h7, {"face_1": "angry"})
        sent = time.monotonic()
        fused = probe.send_emotions("emotion/image", [_est("face_1", "image-cnn", "happy")], h7)
        assert time.monotonic() - sent < 0.9 and [e.face_id for e in fused.emotions] == ["face_1"]
        publish_others(h7, {"face_1": "angry"})
        wait_latest(h7)
        h2 = next_header()
        publish_lstm(h2, {"face_1": "angry"})
        probe.send_emotions("emotion/image", [_est("face_1", "image-cnn", "happy")], h2)
        # svm-blendshapes (not in the image model's profile: default weight) is waited for
        publish("emotion/frame", "svm-blendshapes", "sad", h2)
        h3 = next_header()
        sent = time.monotonic()
        publish_lstm(h3, {"face_1": "angry"})
        publish("emotion/image", "image-cnn", "happy", h3)
        time.sleep(0.3)
        with probe.cond:
            assert stamp_ns(h3) not in probe.got["emotion"], "published without a model that carries weight"
        fused = probe.send_emotions("emotion/frame", [_est("face_1", "svm-blendshapes", "happy")], h3)
        assert time.monotonic() - sent < 0.9 and fused.emotions[0].label == "happy"


def test_bad_parameters_refused():
    with pytest.raises(ParameterError):
        Pipeline(["frame"], parameter_overrides={"frame": {"model": "transformer"}}).start()
    with pytest.raises(ParameterError):
        Pipeline(["emotion_fusion"], parameter_overrides={"emotion_fusion": {"hysteresis": 2.0}}).start()


def _publish_fer_faces(fer, k: int, mesh_pub=None, shape_pub=None) -> tuple[int, dict]:
    """Image ``k``: two real FER-2013 faces, as a FaceMeshArray and (faces in the
    opposite order) a BlendshapesArray, each published where a publisher is given;
    returns the image's stamp and {face id: row}."""
    from emotion_perception_msgs.msg import Blendshapes, BlendshapesArray, FaceMesh, FaceMeshArray

    h = next_header()
    rows = {f"face_{2 * k + 1}": 2 * k, f"face_{2 * k + 2}": 2 * k + 1}
    meshes = FaceMeshArray(header=h)
    for fid, i in rows.items():
        lm = fer["landmarks"][i].astype(np.float32)
        m = FaceMesh(header=h, face_id=fid, image_width=192, image_height=192, score=1.0)
        m.x, m.y, m.z = (lm[:, c].tolist() for c in range(3))
        meshes.faces.append(m)
    shapes = BlendshapesArray(header=h, faces=[Blendshapes(header=h, face_id=fid, scores=fer["blendshapes"][i].tolist())
                                               for fid, i in reversed(list(rows.items()))])
    if shape_pub is not None:
        shape_pub.publish(shapes)
    if mesh_pub is not None:
        mesh_pub.publish(meshes)
    return stamp_ns(h), rows


def _frame_input_publishers(probe, *needed: str):
    """Publishers of faces/mesh and faces/blendshapes, once the topics in ``needed`` are matched."""
    from emotion_perception_msgs.msg import BlendshapesArray, FaceMeshArray

    pubs = {"faces/mesh": probe.node.create_publisher(FaceMeshArray, "faces/mesh", RESULT_QOS),
            "faces/blendshapes": probe.node.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)}
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while any(pubs[t].get_subscription_count() == 0 for t in needed):
        assert time.monotonic() < deadline, f"frame_node never subscribed to {needed}"
        time.sleep(0.05)
    return pubs


def _frame_answer(probe, key: int) -> EmotionArray:
    with probe.cond:
        assert probe.cond.wait_for(lambda: key in probe.got["emotion/frame"], timeout=ANSWER_TIMEOUT_S)
        return probe.got["emotion/frame"][key]


@pytest.mark.parametrize("model, topic", [("gnn-landmarks", "faces/mesh"), ("svm-landmarks", "faces/mesh"),
                                          ("svm-blendshapes", "faces/blendshapes")])
def test_frame_node_reads_only_what_its_model_needs(data_dir, model, topic):
    """Each frame model gets one subscription, to the array it reads, and answers every
    image from that array alone: each estimate is the model's own answer for that face
    (real FER-2013 faces, two per image). A subscription to the other array cost a
    wake-up and a deserialisation per image for nothing."""
    from emotion_perception.classifiers import load
    from emotion_perception.classifiers.base import FrameInput
    from emotion_perception.training import data as D

    fer = D.load_fer(data_dir, "public_test")
    reference = load(model)
    with Pipeline(["frame"], parameter_overrides={"frame": {"model": model}}) as p:
        probe = Probe(p)  # listens to emotion/frame: the node subscribes (nodes/lazy.py)
        assert p.wait_inputs_settled()
        assert [s.topic_name for s in p.nodes["frame"].subscriptions] == ["/" + topic]
        pub = _frame_input_publishers(probe, topic)[topic]
        for k in range(3):
            key, rows = _publish_fer_faces(fer, k, **{("mesh_pub" if topic == "faces/mesh" else "shape_pub"): pub})
            out = _frame_answer(probe, key)
            # in the order of the array read (the blendshapes array lists the faces reversed)
            order = list(rows) if topic == "faces/mesh" else list(reversed(list(rows)))
            assert [e.face_id for e in out.emotions] == order
            for e in out.emotions:
                i = rows[e.face_id]
                want = reference.update(e.face_id, FrameInput(landmarks=fer["landmarks"][i].astype(np.float32),
                                                              blendshapes=fer["blendshapes"][i].astype(np.float32),
                                                              image_wh=(192, 192)))
                assert e.model == model and np.allclose(e.probabilities, want.probabilities, atol=1e-5)


def test_frame_node_pairs_mesh_and_blendshapes_by_image_then_id(data_dir, monkeypatch):
    """A frame model that reads landmarks and blendshapes (the gnn here, made to ask for
    both) gets the two arrays of one image paired, and each face the blendshapes of
    its own id although the two arrays list the faces in opposite orders."""
    from emotion_perception.classifiers import load
    from emotion_perception.nodes import frame_node
    from emotion_perception.training import data as D

    fer = D.load_fer(data_dir, "public_test")
    seen = {}

    class BothInputs:
        def __init__(self, inner):
            self.inner, self.name, self.class_names = inner, inner.name, inner.class_names
            self.needs = inner.needs | {"blendshapes"}

        def update(self, face_id, frame):
            seen[face_id] = frame.blendshapes
            return self.inner.update(face_id, frame)

    monkeypatch.setattr(frame_node, "load_model", lambda name: BothInputs(load(name)))
    with Pipeline(["frame"], parameter_overrides={"frame": {"model": "gnn-landmarks"}}) as p:
        probe = Probe(p)
        assert p.wait_inputs_settled()
        assert sorted(s.topic_name for s in p.nodes["frame"].subscriptions) == ["/faces/blendshapes", "/faces/mesh"]
        pubs = _frame_input_publishers(probe, "faces/mesh", "faces/blendshapes")
        for k in range(3):
            key, rows = _publish_fer_faces(fer, k, pubs["faces/mesh"], pubs["faces/blendshapes"])
            out = _frame_answer(probe, key)
            assert [e.face_id for e in out.emotions] == list(rows)
            for fid, i in rows.items():
                assert np.array_equal(seen[fid], fer["blendshapes"][i].astype(np.float32)), fid
