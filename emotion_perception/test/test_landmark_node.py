"""Node tier: ``landmark_node`` over real rclpy and Fast DDS, in one process.

A probe node in the pipeline's context publishes real photos as ``Image`` and
``CompressedImage`` and listens to ``faces/mesh``, ``faces/blendshapes``,
``faces/blendshapes/names``, ``/rosout`` and ``/diagnostics``. The node subscribes
best-effort (sensor-data QoS), so the probe publishes each input again until the
answer for that stamp arrives; bad inputs are repeated on purpose, to show a stream
of them still gives one log line.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import DATA, own_ros_domain_fixture, read_rgb, wait_until
from diagnostic_msgs.msg import DiagnosticArray
from emotion_perception.assets import ModelFileError, models_dir, recorded_sums
from emotion_perception.conversions import rgb_to_compressed_msg, rgb_to_image_msg
from emotion_perception.nodes.parameters import ParameterError
from emotion_perception.nodes.qos import LATCHED_QOS, RESULT_QOS
from emotion_perception.nodes.stamps import stamp_ns
from emotion_perception.nodes.landmark_node import MAX_FINISHED_WAITING
from emotion_perception.runner import Pipeline
from emotion_perception.types import BLENDSHAPE_NAMES, Blendshape
from emotion_perception_msgs.msg import BlendshapesArray, FaceMeshArray
from rcl_interfaces.msg import Log
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

#: How long to wait for an answer to one input, s.
ANSWER_TIMEOUT_S = 15.0
#: Pause between repeats of an input that got no answer yet, s.
REPEAT_S = 0.2
#: After the last bad input, time for any extra log line to arrive, s.
LOG_SETTLE_S = 1.0

#: Stamp step between inputs, ns (25 fps).
FRAME_NS = 40_000_000


_stamps = itertools.count(1)


def next_header(frame_id: str = "camera_optical") -> Header:
    """A header with a new stamp, 40 ms (25 fps) after the previous one."""
    t_ns = 1000 * 10**9 + next(_stamps) * FRAME_NS + 123_456
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(t_ns, 10**9)
    return h


class Probe:
    """A test node that feeds the pipeline and collects what comes out."""

    def __init__(self, pipeline: Pipeline, compressed: bool = False):
        self.pipeline = pipeline
        self.node = Node("probe", context=pipeline.context)
        self.cond = threading.Condition()
        self.meshes: dict[int, FaceMeshArray] = {}
        self.shapes: dict[int, BlendshapesArray] = {}
        self.logs: list[Log] = []
        self.diagnostics: list[DiagnosticArray] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(CompressedImage if compressed else Image,
                                                    "image/compressed" if compressed else "image", reliable)
        self.node.create_subscription(FaceMeshArray, "faces/mesh", self._store(self.meshes), RESULT_QOS)
        self.node.create_subscription(BlendshapesArray, "faces/blendshapes", self._store(self.shapes), RESULT_QOS)
        self.node.create_subscription(Log, "/rosout", self._on_log, QoSProfile(depth=1000))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RESULT_QOS)
        pipeline.add_node(self.node)

    def _store(self, into: dict):
        def cb(msg):
            with self.cond:
                into[stamp_ns(msg.header)] = msg
                self.cond.notify_all()
        return cb

    def _on_log(self, msg: Log):
        with self.cond:
            self.logs.append(msg)

    def _on_diag(self, msg: DiagnosticArray):
        with self.cond:
            self.diagnostics.append(msg)
            self.cond.notify_all()

    def ask(self, make_msg, header: Header | None = None) -> tuple[FaceMeshArray, BlendshapesArray]:
        """Publish ``make_msg(header)`` until both answers for its stamp arrive."""
        header = header or next_header()
        key = stamp_ns(header)
        msg = make_msg(header)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            self.image_pub.publish(msg)
            with self.cond:
                if self.cond.wait_for(lambda: key in self.meshes and key in self.shapes, timeout=REPEAT_S):
                    return self.meshes[key], self.shapes[key]
        node = self.pipeline.nodes["landmark"]
        raise AssertionError(f"no answer to the image stamped {key} ns within {ANSWER_TIMEOUT_S} s; "
                             f"mesh {key in self.meshes}, blendshapes {key in self.shapes}, "
                             f"workers alive {[w.is_alive() for w in node._workers]}, node {node._diag.snapshot()}")

    def send_bad(self, make_msg, counted, times: int = 3) -> None:
        """Publish a bad input until the node has seen it ``times`` times."""
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while counted() < times:
            assert time.monotonic() < deadline, "the node never received the bad input"
            self.image_pub.publish(make_msg(next_header()))
            time.sleep(0.05)

    def error_lines(self, node_name: str = "landmark_node") -> list[str]:
        with self.cond:
            return [m.msg for m in self.logs if m.name == node_name and m.level >= Log.ERROR]

    def destroy(self):
        self.node.destroy_node()


def wait_idle(node, quiet_s: float = 0.5) -> None:
    """Until the landmark node has nothing queued or in work and took no image for ``quiet_s``."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    last_seq, since = None, time.monotonic()
    while time.monotonic() < deadline:
        with node._lock:
            seq, queued = node._next_seq, len(node._queue)
        busy = queued or node._committed != seq
        if seq != last_seq or busy:
            last_seq, since = seq, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.02)
    raise AssertionError("the landmark node never went idle")


#: This module's DDS domain: 40 + pid % 40 (other test runs on the machine publish
#: /image, /rosout and /diagnostics too).
own_ros_domain = own_ros_domain_fixture(40, 40)


# Class-scoped: one pipeline at a time, so two landmark nodes never answer one probe.
@pytest.fixture(scope="class")
def raw_pipeline():
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 2}}) as p:
        probe = Probe(p)
        yield p, probe
        probe.destroy()


@pytest.fixture(scope="class")
def compressed_pipeline():
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"use_compressed": True}}) as p:
        probe = Probe(p, compressed=True)
        yield p, probe
        probe.destroy()


def check_face_answer(header, meshes, shapes, width, height, faces=1):
    assert meshes.header == header and shapes.header == header
    assert len(meshes.faces) == faces and len(shapes.faces) == faces
    for mesh, bs in zip(meshes.faces, shapes.faces):
        assert mesh.header == header and bs.header == header
        assert mesh.face_id.startswith("face_") and bs.face_id == mesh.face_id
        assert len(mesh.x) == len(mesh.y) == len(mesh.z) == 478
        assert (mesh.image_width, mesh.image_height) == (width, height)
        assert -0.1 < min(mesh.x) and max(mesh.x) < 1.1 and 0.8 < mesh.score <= 1.0  # faces (nearly) in view
        bb = mesh.bounding_box
        assert 0 < bb.width <= width and 0 < bb.height <= height
        x0, x1 = np.clip([min(mesh.x) * width, max(mesh.x) * width], 0, width)  # the box is clipped
        assert abs(bb.x_offset - x0) <= 1 and abs(bb.x_offset + bb.width - x1) <= 1
        assert len(mesh.facial_transformation_matrix) == 16 and np.all(np.isfinite(mesh.facial_transformation_matrix))
        assert len(bs.scores) == 52 and 0.0 <= min(bs.scores) and max(bs.scores) <= 1.0


def smile(bs) -> float:
    return (bs.scores[Blendshape.mouthSmileLeft] + bs.scores[Blendshape.mouthSmileRight]) / 2


# ---------------------------------------------------------------- Image

class TestImage:
    """sensor_msgs/Image in (the default)."""

    @pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
    def test_image_gives_mesh_and_blendshapes_with_the_image_header(self, raw_pipeline, astronaut_rgb, encoding):
        _, probe = raw_pipeline
        header = next_header()
        meshes, shapes = probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h, encoding), header)
        check_face_answer(header, meshes, shapes, 512, 512)
        assert meshes.faces[0].score == 1.0  # the whole face is in the picture
        assert smile(shapes.faces[0]) > (0.3 if encoding == "mono8" else 0.5)

    def test_no_face_gives_empty_arrays(self, raw_pipeline):
        from skimage import data

        _, probe = raw_pipeline
        header = next_header()
        meshes, shapes = probe.ask(lambda h: rgb_to_image_msg(data.coffee(), h), header)
        assert meshes.header == header and shapes.header == header
        assert meshes.faces == [] and shapes.faces == []

    def test_two_faces_have_distinct_stable_ids(self, raw_pipeline, muxspace_images):
        _, probe = raw_pipeline
        by_name = {p.name: p for p, _ in muxspace_images}
        both = np.concatenate([read_rgb(by_name["Jules_Asner_0001.jpg"]), read_rgb(by_name["Colin_Powell_0145.jpg"])],
                              axis=1)
        ids = []
        for _ in range(3):
            header = next_header()
            meshes, shapes = probe.ask(lambda h: rgb_to_image_msg(both, h, "bgr8"), header)
            check_face_answer(header, meshes, shapes, 700, 350, faces=2)
            by_side = {("left" if m.bounding_box.x_offset < 350 else "right"): m.face_id for m in meshes.faces}
            ids.append(by_side)
        assert ids[0] == ids[1] == ids[2] and ids[0]["left"] != ids[0]["right"]

    @pytest.mark.parametrize("name, make, reason, words", [
        ("bad encoding", lambda h: Image(header=h, height=4, width=4, encoding="16UC1", step=8, data=bytes(32)),
         "encoding", "unsupported image encoding '16UC1'"),
        ("empty image", lambda h: Image(header=h, height=0, width=0, encoding="rgb8", step=0, data=b""),
         "empty", "zero size"),
        ("step mismatch", lambda h: Image(header=h, height=10, width=10, encoding="rgb8", step=30, data=bytes(299)),
         "size", "needs 300 bytes but has 299"),
    ])
    def test_bad_image_logs_once_and_the_node_runs_on(self, raw_pipeline, astronaut_rgb, name, make, reason, words):
        pipeline, probe = raw_pipeline
        node = pipeline.nodes["landmark"]
        key = f"bad_image:{reason}"
        probe.send_bad(make, lambda: node._once.count(key))
        time.sleep(LOG_SETTLE_S)
        lines = [line for line in probe.error_lines() if words in line]
        assert len(lines) == 1, (name, probe.error_lines())
        assert "dropping an image from /image" in lines[0]
        header = next_header()
        meshes, shapes = probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h), header)
        check_face_answer(header, meshes, shapes, 512, 512)

    def test_a_looping_bag_restarts_the_landmarker(self, raw_pipeline, astronaut_rgb):
        """Image time jumps back (a bag starting over): answered, with a new face id."""
        pipeline, probe = raw_pipeline
        node = pipeline.nodes["landmark"]
        first, _ = probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h))
        restarts = node.restarts
        early = Header(frame_id="camera_optical")
        early.stamp.sec = 1  # before every stamp so far
        meshes, shapes = probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h), early)
        check_face_answer(early, meshes, shapes, 512, 512)
        assert node.restarts == restarts + 1
        assert meshes.faces[0].face_id != first.faces[0].face_id

    def test_a_full_queue_drops_the_oldest_images(self, raw_pipeline, astronaut_rgb):
        """Images arriving while the worker is busy queue up to ``queue_size`` (default
        2); older ones are dropped and counted, the rest are processed in order."""
        pipeline, probe = raw_pipeline
        node = pipeline.nodes["landmark"]
        assert node.get_parameter("queue_size").value == 2
        for queue_size, sent, kept in ((2, 4, 2), (1, 3, 1)):
            assert node.set_parameters([Parameter("queue_size", value=queue_size)])[0].successful
            headers = [next_header() for _ in range(sent)]
            wait_idle(node)  # a late copy an earlier ask() re-published must not share the queue
            dropped_before = node._diag.snapshot()["dropped_total"]
            with node._lock:  # the worker cannot take an image while we hold its lock
                for h in headers:
                    node._on_image(rgb_to_image_msg(astronaut_rgb, h), {})  # no message info: not from DDS
            with probe.cond:
                assert probe.cond.wait_for(lambda: stamp_ns(headers[-1]) in probe.meshes, timeout=ANSWER_TIMEOUT_S)
            served = [stamp_ns(h) in probe.meshes for h in headers]
            assert served == [False] * (sent - kept) + [True] * kept, (queue_size, served)
            assert node._diag.snapshot()["dropped_total"] == dropped_before + sent - kept
        assert node.set_parameters([Parameter("queue_size", value=2)])[0].successful
        assert not node.set_parameters([Parameter("queue_size", value=0)])[0].successful

    def test_parameters_change_at_run_time_within_their_ranges(self, raw_pipeline, muxspace_images):
        pipeline, probe = raw_pipeline
        node = pipeline.nodes["landmark"]
        by_name = {p.name: p for p, _ in muxspace_images}
        both = np.concatenate([read_rgb(by_name["Barbara_Bach_0001.jpg"]), read_rgb(by_name["Mike_Brey_0001.jpg"])],
                              axis=1)
        try:
            assert node.set_parameters([Parameter("max_faces", value=1)])[0].successful
            meshes, _ = probe.ask(lambda h: rgb_to_image_msg(both, h))
            assert len(meshes.faces) == 1
            result = node.set_parameters([Parameter("max_faces", value=99)])[0]
            assert not result.successful and "range" in result.reason
            assert not node.set_parameters([Parameter("model_path", value="other.task")])[0].successful
            result = node.set_parameters([Parameter("face_search_period", value=-1.0)])[0]
            assert not result.successful and "range" in result.reason
        finally:
            assert node.set_parameters([Parameter("max_faces", value=2)])[0].successful
        meshes, _ = probe.ask(lambda h: rgb_to_image_msg(both, h))
        assert len(meshes.faces) == 2
        try:  # the paced search finds them too
            assert node.set_parameters([Parameter("face_search_period", value=0.5)])[0].successful
            meshes, _ = probe.ask(lambda h: rgb_to_image_msg(both, h))
            assert len(meshes.faces) == 2
        finally:
            assert node.set_parameters([Parameter("face_search_period", value=0.0)])[0].successful

    def test_blendshape_names_are_latched(self, raw_pipeline):
        pipeline, probe = raw_pipeline
        got = []
        sub = probe.node.create_subscription(String, "faces/blendshapes/names", got.append, LATCHED_QOS)
        try:
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while not got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert got, "no latched names arrived for a late subscriber"
            assert tuple(got[0].data.split("\n")) == BLENDSHAPE_NAMES
        finally:
            probe.node.destroy_subscription(sub)

    def test_diagnostics_report_processing_and_bad_input(self, raw_pipeline, astronaut_rgb):
        _, probe = raw_pipeline
        probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h))

        def status():
            for arr in reversed(probe.diagnostics):
                for s in arr.status:
                    if s.name == "/landmark_node":
                        return {kv.key: kv.value for kv in s.values}
            return None

        deadline = time.monotonic() + 5.0
        values = None
        while time.monotonic() < deadline:
            values = status()
            if values and int(values["processed_total"]) > 0:
                break
            time.sleep(0.2)
        assert values, "no /diagnostics from landmark_node"
        for key in ("processing_time_mean_ms", "processing_time_p95_ms", "rate_hz", "dropped_total",
                    "bad_input_total", "input_topic", "landmarker_restarts", "face_searches_total"):
            assert key in values, key
        assert values["input_topic"] == "/image"
        assert 0 < float(values["processing_time_mean_ms"]) < 1000


# ---------------------------------------------------------------- CompressedImage

class TestCompressedImage:
    """sensor_msgs/CompressedImage in (use_compressed)."""

    @pytest.mark.parametrize("fmt", ["jpeg", "png"])
    def test_compressed_image_gives_mesh_and_blendshapes(self, compressed_pipeline, muxspace_images, fmt):
        _, probe = compressed_pipeline
        rgb = read_rgb(dict((p.name, p) for p, _ in muxspace_images)["Brian_Wells_0001.jpg"])
        header = next_header()
        meshes, shapes = probe.ask(lambda h: rgb_to_compressed_msg(rgb, h, fmt), header)
        check_face_answer(header, meshes, shapes, 350, 350)
        assert smile(shapes.faces[0]) > 0.5

    def test_corrupt_jpeg_logs_once_and_the_node_runs_on(self, compressed_pipeline, astronaut_rgb):
        pipeline, probe = compressed_pipeline
        node = pipeline.nodes["landmark"]

        def corrupt(h):
            msg = rgb_to_compressed_msg(astronaut_rgb, h, "jpeg")
            msg.data = bytes(msg.data)[: len(msg.data) // 2]  # cut off mid-stream
            return msg

        probe.send_bad(corrupt, lambda: node._once.count("bad_image:decode"))
        time.sleep(LOG_SETTLE_S)
        lines = [line for line in probe.error_lines() if "JPEG" in line]
        assert len(lines) == 1, probe.error_lines()
        assert "dropping an image from /image/compressed" in lines[0] and "truncated" in lines[0]
        header = next_header()
        meshes, shapes = probe.ask(lambda h: rgb_to_compressed_msg(astronaut_rgb, h, "jpeg"), header)
        check_face_answer(header, meshes, shapes, 512, 512)


# ---------------------------------------------------------------- start and stop

def test_tampered_model_and_bad_parameters_stop_the_start(tmp_path):
    expected = recorded_sums(models_dir())["face_landmarker.task"]
    bad = tmp_path / "face_landmarker.task"
    shutil.copyfile(models_dir() / "face_landmarker.task", bad)
    with open(bad, "r+b") as f:
        f.truncate(1_000_000)
    (tmp_path / "SHA256SUMS").write_text(f"{expected}  face_landmarker.task\n")
    with pytest.raises(ModelFileError) as e:
        Pipeline(["landmark"], parameter_overrides={"landmark": {"model_path": str(bad)}}).start()
    assert str(bad) in str(e.value) and expected in str(e.value)
    with pytest.raises(ParameterError, match="max_faces"):
        Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 0}}).start()


@pytest.mark.parametrize("n", [1, 2])
def test_destroy_stops_the_worker_threads(n):
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"workers": n}}) as p:
        workers = list(p.nodes["landmark"]._workers)
        assert len(workers) == n and all(w.is_alive() for w in workers)
    assert not any(w.is_alive() for w in workers)
    assert not set(workers) & set(threading.enumerate())


@pytest.fixture(scope="class")
def two_workers():
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 2, "workers": 2,
                                                                  "queue_size": 10}}) as p:
        probe = Probe(p)
        yield p, probe
        probe.destroy()


class TestTwoWorkers:
    """``workers: 2``: two MediaPipe landmarkers take consecutive images at once."""

    @staticmethod
    def two_faces(muxspace_images) -> np.ndarray:
        by_name = {p.name: p for p, _ in muxspace_images}
        return np.concatenate([read_rgb(by_name["Jules_Asner_0001.jpg"]),
                               read_rgb(by_name["Colin_Powell_0145.jpg"])], axis=1)

    def test_a_burst_is_published_in_image_order_with_one_set_of_ids(self, two_workers, muxspace_images):
        pipeline, probe = two_workers
        node = pipeline.nodes["landmark"]
        both = self.two_faces(muxspace_images)
        probe.ask(lambda h: rgb_to_image_msg(both, h, "bgr8"))  # warm up both engines' first frame
        headers = [next_header() for _ in range(8)]  # within queue_size: none dropped
        with node._lock:  # queue them all at once: both workers get busy
            for h in headers:
                node._on_image(rgb_to_image_msg(both, h, "bgr8"), {})  # no message info: not from DDS
        keys = [stamp_ns(h) for h in headers]
        with probe.cond:
            assert probe.cond.wait_for(lambda: all(k in probe.meshes and k in probe.shapes for k in keys),
                                       timeout=ANSWER_TIMEOUT_S), "not every queued image was answered"
            arrival = [k for k in probe.meshes if k in keys]
            meshes = [probe.meshes[k] for k in keys]
        assert arrival == keys, "results were published out of image order"
        sides = [{("left" if m.bounding_box.x_offset < 350 else "right"): m.face_id for m in ms.faces}
                 for ms in meshes]
        assert all(s == sides[0] for s in sides) and len(set(sides[0].values())) == 2, sides
        assert all(e._last_stamp_ms is not None for e in node._engines), "one engine did all the work"

    def test_an_image_that_finds_the_first_worker_idle_goes_to_it(self, two_workers, astronaut_rgb):
        """At a rate worker 0 keeps up with, it takes every image, so one MediaPipe
        landmarker tracks each face from the image before. (Woken in turn, the workers
        took every other image: where MediaPipe tracks, each landmarker then tracked from
        two images back, and blendshapes jittered more: benchmarks/worker_order.py.)"""
        pipeline, probe = two_workers
        node = pipeline.nodes["landmark"]
        wait_idle(node)
        before = [e.searches for e in node._engines]  # max_faces 2, no pacing: one per image
        for _ in range(6):
            assert wait_until(lambda: all(node._idle), ANSWER_TIMEOUT_S), "the workers never went back to waiting"
            h = next_header()
            node._on_image(rgb_to_image_msg(astronaut_rgb, h), {})  # no message info: not from DDS
            with probe.cond:
                assert probe.cond.wait_for(lambda: stamp_ns(h) in probe.meshes, timeout=ANSWER_TIMEOUT_S)
        assert [e.searches - b for e, b in zip(node._engines, before)] == [6, 0]

    @pytest.mark.parametrize("n_images", [9, 16])
    def test_a_slow_image_holds_only_its_own_worker(self, two_workers, astronaut_rgb, n_images):
        """One MediaPipe call that stalls holds only its own worker: the other keeps
        taking camera images, so the queue (``queue_size`` 2) drops none of 9 images,
        and every result still goes out in image order once the slow one is done. (A
        worker that waited for the slow image's turn to publish left the queue to
        overflow: 5 of the 9 were dropped.) Beyond MAX_FINISHED_WAITING finished images
        (16 images) the other worker waits too: some are dropped and counted, the rest
        answered in order, and the node runs on.

        Paced by the node's state, not by the clock: the first image stalls until every
        image was sent, and each next image is sent once the one before was taken from
        the queue (or once the other worker holds MAX_FINISHED_WAITING finished images,
        when nothing more will be taken)."""
        pipeline, probe = two_workers
        node = pipeline.nodes["landmark"]
        probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h))
        stalls, lock = [1], threading.Lock()
        stalled, release = threading.Event(), threading.Event()

        def slow_once(detect):
            def wrapper(rgb, image_time):
                with lock:
                    stall, stalls[0] = stalls[0] > 0, 0
                if stall:
                    stalled.set()
                    release.wait(ANSWER_TIMEOUT_S)
                return detect(rgb, image_time)
            return wrapper

        assert node.set_parameters([Parameter("queue_size", value=2)])[0].successful
        for engine in node._engines:
            engine.detect = slow_once(engine.detect)  # the first image taken stalls
        try:
            wait_idle(node)
            dropped_before = node._diag.snapshot()["dropped_total"]
            headers = [next_header() for _ in range(n_images)]
            for k, h in enumerate(headers):
                node._on_image(rgb_to_image_msg(astronaut_rgb, h), {})  # no message info: not from DDS
                if k == 0:
                    assert stalled.wait(ANSWER_TIMEOUT_S), "no worker took the first image"
                else:
                    taken = wait_until(lambda: not node._queue or len(node._done) >= MAX_FINISHED_WAITING,
                                       ANSWER_TIMEOUT_S, 0.005)
                    assert taken, f"image {k} was never taken while the other worker stalled"
            release.set()
            keys = [stamp_ns(h) for h in headers]

            def settled() -> bool:  # every image answered or dropped
                dropped = node._diag.snapshot()["dropped_total"] - dropped_before
                return sum(k in probe.meshes for k in keys) + dropped == len(keys)
            with probe.cond:
                probe.cond.wait_for(settled, timeout=ANSWER_TIMEOUT_S)
                arrival = [k for k in probe.meshes if k in keys]
            dropped = node._diag.snapshot()["dropped_total"] - dropped_before
            assert len(arrival) + dropped == len(keys), (len(arrival), dropped)
            assert arrival == [k for k in keys if k in arrival], "out of image order"
            if n_images <= MAX_FINISHED_WAITING + 1:
                assert dropped == 0, "the queue dropped images"
            else:
                assert 0 < dropped < n_images - MAX_FINISHED_WAITING, dropped
        finally:
            release.set()
            for engine in node._engines:
                del engine.detect  # the method again
            assert node.set_parameters([Parameter("queue_size", value=10)])[0].successful
        probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h))  # and it runs on

    def test_time_going_back_ends_the_track_once(self, two_workers, astronaut_rgb):
        """Both landmarkers restart on their first earlier stamp, but the one tracker
        ends the track once: every image after the jump has the same new id."""
        pipeline, probe = two_workers
        node = pipeline.nodes["landmark"]
        before = [probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h))[0].faces[0].face_id for _ in range(4)]
        assert len(set(before)) == 1
        restarts = node.restarts
        after = []
        for k in range(4):
            early = Header(frame_id="camera_optical")
            early.stamp.sec, early.stamp.nanosec = 2 + k // 25, (k % 25) * FRAME_NS  # before every stamp so far
            meshes, _ = probe.ask(lambda h: rgb_to_image_msg(astronaut_rgb, h), early)
            after.append(meshes.faces[0].face_id)
        assert len(set(after)) == 1 and after[0] != before[0], (before, after)
        assert restarts + 1 <= node.restarts <= restarts + 2


NO_IMPORT_SCRIPT = textwrap.dedent("""
    import json, sys, threading, time
    import cv2
    import numpy as np
    from rclpy.node import Node
    from emotion_perception.conversions import rgb_to_image_msg
    from emotion_perception.nodes.qos import RESULT_QOS, SENSOR_QOS
    from emotion_perception.runner import Pipeline
    from emotion_perception_msgs.msg import FaceMeshArray
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    photo = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
    imported, watching = [], [False]
    sys.addaudithook(lambda ev, args: imported.append(args[0]) if watching[0] and ev == "import" else None)
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Node("probe", context=p.context)
        pub = probe.create_publisher(Image, "image", SENSOR_QOS)
        served, cond = set(), threading.Condition()
        def on_mesh(m):
            with cond:
                served.add((m.header.stamp.sec, len(m.faces)))
                cond.notify_all()
        probe.create_subscription(FaceMeshArray, "faces/mesh", on_mesh, RESULT_QOS)
        p.add_node(probe)
        watching[0] = True
        for k in range(8):  # the face moves 4 px per frame: every frame after the first meets a track
            frame = np.full((480, 640, 3), 90, np.uint8)
            h, w = photo.shape[:2]
            frame[40:40 + h, 40 + 4 * k:40 + 4 * k + w] = photo
            msg = rgb_to_image_msg(frame, Header(stamp=Time(sec=k + 1)))
            end = time.monotonic() + 15.0
            with cond:
                while not any(s == k + 1 for s, _ in served) and time.monotonic() < end:
                    pub.publish(msg)
                    cond.wait(0.5)
        watching[0] = False
    print(json.dumps({"served": sorted(served), "imported": sorted(set(imported))}))
""")


def test_serving_frames_imports_nothing():
    """In a process of its own (as under ``ros2 launch``), the landmark node imports no
    module while it serves frames: everything is loaded before it subscribes. A module
    imported on the first frame that met a live track (scipy.optimize, ~0.25 s)
    stalled that frame for every new node process."""
    photo = DATA / "muxspace" / "images" / "Colin_Powell_0145.jpg"
    r = subprocess.run([sys.executable, "-c", NO_IMPORT_SCRIPT, str(photo)], env=dict(os.environ),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    served = out["served"]
    assert [s for s, _ in served] == list(range(1, 9)), f"not every frame was served: {served}"
    assert all(n == 1 for _, n in served), f"the face was not found in every frame: {served}"
    assert out["imported"] == [], f"modules imported while serving frames: {out['imported']}"
