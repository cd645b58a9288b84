"""A corpus of bad inputs run through the nodes over the real middleware.

Every case sends its bad input (twice, so a node that logs per message shows it), then
a good frame, and checks that:

* the node logs at most one line for the case (OnceLog: one line per kind of problem),
* the node still serves the good frame (its output arrives with the good frame's stamp),
* the bad input was counted (``bad_input_total`` / ``dropped_total`` in /diagnostics),
  never turned into a result.

Parameters of the wrong type or out of range go through the node's real parameter
callback (``Node.set_parameters``) and must be refused; missing, truncated and tampered
model files must stop the node at start with a message naming the file and the
expected sha256, in-process and as a real ``main()`` process.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from emotion_perception import assets
from emotion_perception.nodes.qos import RESULT_QOS, SENSOR_QOS
from emotion_perception.runner import Pipeline
from emotion_perception_msgs.msg import FaceMeshArray

from conftest import DATA, own_ros_domain_fixture, read_rgb

REPO = pathlib.Path(__file__).resolve().parents[2]
GOOD_PHOTO = DATA / "muxspace" / "images" / "Colin_Powell_0145.jpg"
#: How long a good frame may take to come back through the node, s (first frames
#: include MediaPipe's warm-up on a loaded 2-core machine).
REPLY_TIMEOUT_S = 10.0
#: Pause between two bad messages, s: the node keeps only the newest image, so
#: messages closer together may be replaced (counted as dropped) before it sees them.
BAD_SPACING_S = 0.05
LOG_LINE = re.compile(r"^\[(ERROR|WARN|FATAL)\] \[[0-9.]+\] \[landmark_node\]", re.M)
#: What libjpeg and libpng print themselves, bypassing the node's log: never per frame.
NATIVE_DECODER_LINE = re.compile(r"^(Corrupt JPEG data|Premature end of JPEG|libpng (warning|error)|Warning:)", re.M)


# ------------------------------------------------------------------ corpus

def _image(rgb: np.ndarray, encoding="rgb8", width=None, height=None, step=None, data=None) -> Image:
    m = Image()
    m.height = rgb.shape[0] if height is None else height
    m.width = rgb.shape[1] if width is None else width
    m.encoding = encoding
    m.step = rgb.shape[1] * 3 if step is None else step
    m.data = rgb.tobytes() if data is None else data
    return m


def _compressed(data: bytes, fmt="jpeg") -> CompressedImage:
    m = CompressedImage()
    m.format = fmt
    m.data = data
    return m


def _jpeg(rgb) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _png(rgb) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its SOF0 frame header claiming another pixel size (a decompression bomb)."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]


RAW_CASES = {
    "encoding yuv422": lambda g: _image(g, encoding="yuv422"),
    "encoding 32FC1": lambda g: _image(g, encoding="32FC1"),
    "encoding bayer_rggb8": lambda g: _image(g, encoding="bayer_rggb8"),
    "encoding empty": lambda g: _image(g, encoding=""),
    "encoding rgb16": lambda g: _image(g, encoding="rgb16"),
    "encoding nonsense": lambda g: _image(g, encoding="not-an-encoding"),
    "step shorter than a row": lambda g: _image(g, step=g.shape[1] * 3 - 1),
    "data shorter than step*height": lambda g: _image(g, data=g.tobytes()[:-100]),
    "data longer than step*height": lambda g: _image(g, data=g.tobytes() + bytes(100)),
    "padded step without the padding": lambda g: _image(g, step=g.shape[1] * 3 + 16),
    "zero width": lambda g: _image(g, width=0),
    "zero height": lambda g: _image(g, height=0),
    "zero size, no data": lambda g: _image(g, width=0, height=0, step=0, data=b""),
    "no data": lambda g: _image(g, data=b""),
    "huge claimed size": lambda g: _image(g, width=100_000, height=100_000, step=300_000, data=bytes(300_000)),
    "mono8 with rgb8 data": lambda g: _image(g, encoding="mono8", step=g.shape[1]),
    "rgba8 with rgb8 data": lambda g: _image(g, encoding="rgba8", step=g.shape[1] * 4),
}

COMPRESSED_CASES = {
    "jpeg truncated to half": lambda g: _compressed(_jpeg(g)[: len(_jpeg(g)) // 2]),
    "jpeg header only": lambda g: _compressed(_jpeg(g)[:20]),
    "jpeg without end marker": lambda g: _compressed(_jpeg(g)[:-2]),
    "jpeg header then garbage": lambda g: _compressed(_jpeg(g)[:600] + np.random.default_rng(1).integers(
        0, 255, 20_000, dtype=np.uint8).tobytes() + b"\xff\xd9"),
    "jpeg with a corrupt middle, end marker intact": lambda g: _compressed(
        _jpeg(g)[: len(_jpeg(g)) // 2] + _jpeg(g)[len(_jpeg(g)) // 2 + 50:]),
    "png truncated": lambda g: _compressed(_png(g)[: len(_png(g)) // 2], fmt="png"),
    "random bytes": lambda g: _compressed(np.random.default_rng(2).integers(0, 255, 5000, dtype=np.uint8).tobytes()),
    "empty data": lambda g: _compressed(b""),
    "text, not an image": lambda g: _compressed(b"hello, I am not a JPEG"),
    "BMP, not JPEG or PNG": lambda g: _compressed(cv2.imencode(".bmp", g)[1].tobytes(), fmt="bmp"),
    "jpeg claiming 65000x65000": lambda g: _compressed(_jpeg_with_size(_jpeg(g), 65000, 65000)),
    "compressedDepth format": lambda g: _compressed(_png(g), fmt="16UC1; compressedDepth png"),
}

PARAMETER_CASES = {
    "max_faces wrong type (string)": Parameter("max_faces", value="two"),
    "max_faces below range": Parameter("max_faces", value=0),
    "max_faces above range": Parameter("max_faces", value=11),
    "max_faces float for int": Parameter("max_faces", value=2.5),
    "detection confidence above 1": Parameter("min_face_detection_confidence", value=1.5),
    "tracking confidence below 0": Parameter("min_tracking_confidence", value=-0.1),
    "track_min_iou wrong type": Parameter("track_min_iou", value="x"),
    "track_max_gap_s negative": Parameter("track_max_gap_s", value=-1.0),
    "detection confidence NaN": Parameter("min_face_detection_confidence", value=float("nan")),
    "max_faces bool for int": Parameter("max_faces", value=True),
    "queue_size array for int": Parameter("queue_size", value=[1, 2]),
    "use_compressed is read-only": Parameter("use_compressed", value=True),
    "model_path is read-only": Parameter("model_path", value="other.task"),
}


# ------------------------------------------------------------------ harness

class Probe:
    """Publishes images into a running pipeline and collects what comes back."""

    def __init__(self, pipeline: Pipeline, compressed: bool):
        self.node = Node("bad_input_probe", context=pipeline.context)
        kind, topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.pub = self.node.create_publisher(kind, topic, SENSOR_QOS)
        self.meshes: dict[int, FaceMeshArray] = {}
        self.diag: dict[str, str] = {}
        self._cond = threading.Condition()
        self.node.create_subscription(FaceMeshArray, "faces/mesh", self._on_mesh, RESULT_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RESULT_QOS)
        pipeline.add_node(self.node)
        self.stamp_ns = 1_000_000_000

    def _on_mesh(self, msg):
        with self._cond:
            self.meshes[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
            self._cond.notify_all()

    def _on_diag(self, msg):
        for s in msg.status:
            if s.name.endswith("landmark_node"):
                with self._cond:
                    self.diag = {kv.key: kv.value for kv in s.values}
                    self._cond.notify_all()

    def next_stamp(self) -> int:
        self.stamp_ns += 40_000_000
        return self.stamp_ns

    def send(self, msg, stamp_ns: int | None = None) -> int:
        stamp_ns = self.next_stamp() if stamp_ns is None else stamp_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "camera"
        self.pub.publish(msg)
        return stamp_ns

    def wait_mesh(self, stamp_ns: int, timeout=REPLY_TIMEOUT_S) -> FaceMeshArray | None:
        end = time.monotonic() + timeout
        with self._cond:
            while stamp_ns not in self.meshes and time.monotonic() < end:
                self._cond.wait(0.05)
            return self.meshes.get(stamp_ns)

    def good(self, msg_factory, stamp_ns: int | None = None, tries: int = 3) -> FaceMeshArray:
        """Send a good frame until its result comes back (best-effort input may be lost once)."""
        for _ in range(tries):
            if stamp_ns is not None:
                with self._cond:  # an earlier image of the same stamp answered already: wait for this one's
                    self.meshes.pop(stamp_ns, None)
            s = self.send(msg_factory(), stamp_ns)
            got = self.wait_mesh(s, REPLY_TIMEOUT_S / tries)
            if got is not None:
                return got
        raise AssertionError("the node served no result for a good frame")

    def wait_diag(self, key: str, at_least: int, timeout=5.0) -> int:
        end = time.monotonic() + timeout
        with self._cond:
            while int(self.diag.get(key, "0")) < at_least and time.monotonic() < end:
                self._cond.wait(0.1)
            return int(self.diag.get(key, "0"))


own_ros_domain = own_ros_domain_fixture(160)


@pytest.fixture(scope="module")
def good_rgb():
    return read_rgb(GOOD_PHOTO)


def _run_corpus(compressed: bool, cases: dict, good_rgb, capfd) -> None:
    good_msg = (lambda: _compressed(_jpeg(good_rgb))) if compressed else (lambda: _image(good_rgb))
    overrides = {"landmark": {"max_faces": 1, "use_compressed": compressed}}
    with Pipeline(["landmark"], parameter_overrides=overrides) as p:
        probe = Probe(p, compressed)
        first = probe.good(good_msg)
        assert len(first.faces) == 1, "the good photo must give one face"
        capfd.readouterr()
        sent_bad = 0
        report = []
        for name, factory in cases.items():
            stamps = []
            for _ in range(2):
                stamps.append(probe.send(factory(good_rgb)))
                sent_bad += 1
                time.sleep(BAD_SPACING_S)
            reply = probe.good(good_msg)
            assert len(reply.faces) == 1, f"{name}: the good frame after it lost its face"
            for s in stamps:
                assert s not in probe.meshes, f"{name}: a bad image produced a result"
            err = capfd.readouterr().err
            lines = LOG_LINE.findall(err)
            report.append((name, len(lines)))
            assert len(lines) <= 1, f"{name}: {len(lines)} log lines for one kind of bad input:\n{err}"
            native = NATIVE_DECODER_LINE.findall(err)
            assert not native, f"{name}: the decoder printed to stderr itself, once per frame:\n{err}"
        # the capture works and the node does speak: each kind of problem logged once
        logged = sum(n for _, n in report)
        assert logged >= 3, f"hardly any log lines captured: {report}"
        # every bad image was refused (bad_input_total) or replaced before it was seen (dropped_total)
        bad = probe.wait_diag("bad_input_total", sent_bad)
        dropped = int(probe.diag.get("dropped_total", "0"))
        assert bad + dropped >= sent_bad, f"only {bad} refused + {dropped} dropped of {sent_bad} bad images"
        assert bad >= sent_bad // 2, f"only {bad} of {sent_bad} bad images reached the node's checks"
        kinds = {k for k in probe.diag if k.startswith("bad_input_") and k != "bad_input_total"}
        assert kinds, f"no per-kind bad input counters in /diagnostics: {probe.diag}"


def test_bad_raw_images_landmark_node(good_rgb, capfd):
    _run_corpus(False, RAW_CASES, good_rgb, capfd)


def test_bad_compressed_images_landmark_node(good_rgb, capfd):
    _run_corpus(True, COMPRESSED_CASES, good_rgb, capfd)


def test_jpeg_padding_accepted_and_decoder_warnings_said_once(good_rgb, capfd):
    """A valid JPEG followed by 4 KB of padding (cameras that send fixed-size buffers) is
    processed; a JPEG the decoder warns about but decodes whole (bytes before the end
    marker, as some USB webcams send) is processed with one warning for the stream, and
    the decoder's own stderr line never appears (it did once per frame)."""
    jpeg = _jpeg(good_rgb)
    padded = lambda: _compressed(jpeg + bytes(4096))  # noqa: E731
    extraneous = lambda: _compressed(jpeg[:-2] + bytes(10) + b"\xff\xd9")  # noqa: E731
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1, "use_compressed": True}}) as p:
        probe = Probe(p, True)
        probe.good(lambda: _compressed(jpeg))
        capfd.readouterr()
        for _ in range(3):
            assert len(probe.good(padded).faces) == 1, "a padded JPEG lost its face"
        err = capfd.readouterr().err
        assert not LOG_LINE.findall(err), f"a padded JPEG was complained about:\n{err}"
        for _ in range(5):
            assert len(probe.good(extraneous).faces) == 1, "a JPEG with a decoder warning lost its face"
        err = capfd.readouterr().err
        assert not NATIVE_DECODER_LINE.findall(err), f"libjpeg printed per frame:\n{err}"
        lines = [ln for ln in err.splitlines() if LOG_LINE.match(ln)]
        assert len(lines) == 1 and "extraneous bytes" in lines[0], f"not one warning for the stream:\n{err}"
        assert probe.wait_diag("decode_warnings_total", 5) >= 5


def test_out_of_order_duplicate_and_zero_stamps(good_rgb, capfd):
    """Time jumping back, a repeated stamp and a zero stamp: still one result each."""
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, False)
        late = probe.good(lambda: _image(good_rgb), stamp_ns=50_000_000_000)
        assert len(late.faces) == 1
        capfd.readouterr()
        for name, stamp in (("time jumps back 40 s", 10_000_000_000), ("duplicate stamp", 10_000_000_000),
                            ("earlier by 1 ms", 9_999_000_000), ("zero stamp", 0)):
            reply = probe.good(lambda: _image(good_rgb), stamp_ns=stamp)
            assert len(reply.faces) == 1, name
            assert reply.faces[0].face_id.startswith("face_"), name
            err = capfd.readouterr().err
            lines = LOG_LINE.findall(err)
            assert len(lines) <= 1, f"{name}: {len(lines)} log lines:\n{err}"
        ok = probe.good(lambda: _image(good_rgb), stamp_ns=11_000_000_000)
        assert len(ok.faces) == 1


def test_bad_parameters_rejected_by_callback(good_rgb, capfd):
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        node = p.nodes["landmark"]
        probe = Probe(p, False)
        probe.good(lambda: _image(good_rgb))
        before = {n: node.get_parameter(n).value for n in ("max_faces", "min_face_detection_confidence",
                                                          "min_tracking_confidence", "track_min_iou",
                                                          "track_max_gap_s", "queue_size", "use_compressed",
                                                          "model_path")}
        capfd.readouterr()
        for name, param in PARAMETER_CASES.items():
            (result,) = node.set_parameters([param])
            assert not result.successful, f"{name}: accepted"
            assert result.reason, f"{name}: refused without a reason"
            if "read-only" not in name:
                assert "expects" in result.reason and re.search(r"integer|floating-point", result.reason), \
                    f"{name}: the refusal does not name the expected type: {result.reason}"
                assert "[" in result.reason, f"{name}: the refusal does not name the range: {result.reason}"
            assert node.get_parameter(param.name).value == before[param.name], f"{name}: value changed"
            lines = LOG_LINE.findall(capfd.readouterr().err)
            assert len(lines) <= 1, f"{name}: {len(lines)} log lines"
        # a good change is still accepted, and frames are still served afterwards
        (ok,) = node.set_parameters([Parameter("max_faces", value=2)])
        assert ok.successful, ok.reason
        reply = probe.good(lambda: _image(good_rgb))
        assert len(reply.faces) == 1


def test_parameters_over_the_parameter_services():
    """What ``ros2 param set`` does, through the nodes' real parameter services from
    another node: a refused value reports failure (and is not stored), its reason names
    the expected type in words and the range, integers are taken for floating-point
    parameters, and later sets keep working (a refused cross-parameter value once
    poisoned every later set on the attention node)."""
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    with Pipeline(["landmark", "attention"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        caller = Node("param_caller", context=p.context)
        p.add_node(caller)

        def call(node: str, name: str, value):
            client = AsyncParameterClient(caller, node)
            assert client.wait_for_services(10.0), f"no parameter services on {node}"
            future = client.set_parameters([Parameter(name, value=value)])
            end = time.monotonic() + 10.0
            while not future.done() and time.monotonic() < end:
                time.sleep(0.01)
            (result,) = future.result().results
            future = client.get_parameters([name])
            while not future.done() and time.monotonic() < end:
                time.sleep(0.01)
            return result, parameter_value_to_python(future.result().values[0])

        r, stored = call("attention_node", "looking_off", 0.9)
        assert not r.successful, "looking_off above looking_on reported success"
        assert "looking_on" in r.reason, r.reason
        assert stored == 0.4, f"a refused looking_off was stored: {stored}"
        r, stored = call("attention_node", "hfov_deg", 90)  # an integer for a double
        assert r.successful, f"a valid hfov_deg after a refused value was refused: {r.reason}"
        assert stored == 90.0 and isinstance(stored, float), stored
        assert p.nodes["attention"]._estimator.hfov_deg == 90.0, "hfov_deg stored but not applied"
        r, stored = call("attention_node", "hfov_deg", "wide")
        assert not r.successful and stored == 90.0
        assert "floating-point number" in r.reason and "range [10.0, 170.0]" in r.reason, r.reason
        assert "'2'" not in r.reason and "'4'" not in r.reason, f"type codes in the refusal: {r.reason}"
        r, stored = call("attention_node", "looking_off", 0.5)
        assert r.successful and stored == 0.5, r.reason
        r, stored = call("landmark_node", "min_face_detection_confidence", 1)
        assert r.successful, f"an integer for a floating-point parameter was refused: {r.reason}"
        assert stored == 1.0 and isinstance(stored, float), stored
        r, stored = call("landmark_node", "max_faces", 2.0)
        assert not r.successful and stored == 1, "a float for an integer parameter was accepted"
        assert "integer in the range [1, 10]" in r.reason, r.reason
        caller.destroy_node()


# ------------------------------------------------------------------ model files

@pytest.fixture(scope="module")
def model_variants(tmp_path_factory):
    """Directories with a missing, a truncated and a tampered face_landmarker.task,
    each with the real SHA256SUMS beside it."""
    src = assets.models_dir()
    expected = assets.recorded_sums(src)["face_landmarker.task"]
    out = {}
    for kind in ("missing", "truncated", "tampered"):
        d = tmp_path_factory.mktemp(kind)
        shutil.copy(src / "SHA256SUMS", d / "SHA256SUMS")
        data = (src / "face_landmarker.task").read_bytes()
        if kind == "truncated":
            (d / "face_landmarker.task").write_bytes(data[: len(data) // 3])
        elif kind == "tampered":
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            (d / "face_landmarker.task").write_bytes(bytes(b))
        out[kind] = d / "face_landmarker.task"
    return expected, out


@pytest.mark.parametrize("kind", ["missing", "truncated", "tampered"])
def test_bad_model_file_refused_at_start(model_variants, kind):
    from emotion_perception.assets import ModelFileError

    expected, paths = model_variants
    with pytest.raises(ModelFileError) as err:
        with Pipeline(["landmark"], parameter_overrides={"landmark": {"model_path": str(paths[kind])}}):
            pass
    text = str(err.value)
    assert str(paths[kind]) in text and expected in text, text


def test_tampered_model_stops_node_process_with_one_line(model_variants):
    """The real console entry point: exit status 1, one fatal line naming file and digest."""
    expected, paths = model_variants
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "emotion_perception.nodes.landmark_node", "--ros-args", "-p",
                        f"model_path:={paths['tampered']}"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    fatal = [ln for ln in r.stderr.splitlines() if "[FATAL]" in ln or "ModelFileError" in ln]
    assert len(fatal) == 1, r.stderr[-2000:]
    assert str(paths["tampered"]) in fatal[0] and expected in fatal[0]
    assert hashlib.sha256(paths["tampered"].read_bytes()).hexdigest() in fatal[0]

def test_a_params_file_ros_cannot_parse_stops_a_node_process_with_one_line(tmp_path):
    """``ros2 run ... --ros-args --params-file bad.yaml``: rclpy.init refuses the file;
    the node says so in one line and exits 2 instead of printing a traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("lstm_node: [\n")
    r = subprocess.run([sys.executable, "-m", "emotion_perception.nodes.lstm_node", "--ros-args", "--params-file",
                        str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = [ln for ln in r.stderr.splitlines() if "cannot start" in ln]
    assert "params file" in line and str(bad) in line



# ------------------------------------------------------------------ our own messages

#: Nodes downstream of the landmark node, fed here directly with our own messages.
DOWNSTREAM_NODES = ("transformer", "lstm", "frame", "image_emotion", "attention", "emotion_fusion")
NODE_LOG_LINE = re.compile(r"^\[(ERROR|WARN|FATAL)\] \[[0-9.]+\] \[(\w+)\]", re.M)


def _mesh_case(mutate):
    def make(mesh, shapes, crops=None):
        m = copy.deepcopy(mesh)
        mutate(m.faces[0])
        return [("faces/mesh", m), ("faces/blendshapes", copy.deepcopy(shapes))]
    return make


def _shapes_case(mutate):
    def make(mesh, shapes, crops=None):
        s = copy.deepcopy(shapes)
        mutate(s.faces[0])
        return [("faces/mesh", copy.deepcopy(mesh)), ("faces/blendshapes", s)]
    return make


def _set(attr, value):
    return lambda f: setattr(f, attr, value)


def _nan_at(attr, i=10):
    def mutate(f):
        v = list(getattr(f, attr))
        v[i] = float("nan")
        setattr(f, attr, v)
    return mutate


def _crop_case(mutate):
    def make(mesh, shapes, crops):
        c = copy.deepcopy(crops)
        mutate(c.faces[0])
        return [("faces/crops", c)]
    return make


def _emotion_case(mutate):
    def make(mesh, shapes, crops=None):
        from emotion_perception_msgs.msg import Emotion, EmotionArray

        arr = EmotionArray()
        arr.header = copy.deepcopy(mesh.header)
        e = Emotion(face_id=mesh.faces[0].face_id, label="happy", confidence=0.8,
                    class_names=["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
                    probabilities=[0.02, 0.02, 0.02, 0.8, 0.1, 0.02, 0.02], valence=0.5, arousal=0.2,
                    model="svm-landmarks", frames_used=1, confident=True)
        mutate(e)
        arr.emotions = [e]
        return [("emotion/frame", arr)]
    return make


MESSAGE_CASES = {
    "mesh x of 477 points": _mesh_case(lambda f: setattr(f, "x", list(f.x)[:477])),
    "mesh NaN in x": _mesh_case(_nan_at("x")),
    "mesh inf in z": _mesh_case(lambda f: setattr(f, "z", [float("inf")] + list(f.z)[1:])),
    "mesh x, y, z of different lengths": _mesh_case(lambda f: setattr(f, "z", list(f.z)[:100])),
    "mesh with no points": _mesh_case(lambda f: (setattr(f, "x", []), setattr(f, "y", []), setattr(f, "z", []))),
    "mesh of a zero-size image": _mesh_case(lambda f: (setattr(f, "image_width", 0), setattr(f, "image_height", 0))),
    "mesh with an empty face id": _mesh_case(_set("face_id", "")),
    "mesh with a NaN head pose": _mesh_case(
        lambda f: setattr(f, "facial_transformation_matrix", [float("nan")] * 16)),
    "blendshapes of 51 scores": _shapes_case(lambda f: setattr(f, "scores", list(f.scores)[:51])),
    "blendshapes of 60 scores": _shapes_case(lambda f: setattr(f, "scores", list(f.scores) + [0.0] * 8)),
    "blendshapes with NaN": _shapes_case(_nan_at("scores", 25)),
    "blendshapes empty": _shapes_case(lambda f: setattr(f, "scores", [])),
    "blendshapes of an unknown face id": _shapes_case(_set("face_id", "face_999")),
    "mesh landmarks of 1e30": _mesh_case(lambda f: setattr(f, "y", [1e30] * len(f.y))),
    "mesh landmark of -50 image sizes": _mesh_case(lambda f: setattr(f, "x", [-50.0] + list(f.x)[1:])),
    "blendshape score of 7.5": _shapes_case(lambda f: setattr(f, "scores", [7.5] + list(f.scores)[1:])),
    "blendshape score of -0.5": _shapes_case(lambda f: setattr(f, "scores", list(f.scores)[:-1] + [-0.5])),
    "500 faces in one array": lambda mesh, shapes, crops: [
        ("faces/mesh", _many(mesh, 500)), ("faces/blendshapes", _many(shapes, 500)), ("faces/crops", _many(crops, 500))],
    "emotion with probabilities of the wrong length": _emotion_case(
        lambda e: setattr(e, "probabilities", [0.5, 0.5])),
    "emotion with NaN probabilities": _emotion_case(lambda e: setattr(e, "probabilities", [float("nan")] * 7)),
    "emotion with an unknown class name": _emotion_case(
        lambda e: setattr(e, "class_names", ["angry", "bored", "fear", "happy", "neutral", "sad", "surprise"])),
    "emotion with no classes": _emotion_case(lambda e: (setattr(e, "class_names", []),
                                                        setattr(e, "probabilities", []))),
    "emotion of an unknown model": _emotion_case(_set("model", "crystal-ball")),
    "face crop in rgb8": _crop_case(lambda f: setattr(f.image, "encoding", "rgb8")),
    "face crop not square": _crop_case(lambda f: setattr(f.image, "height", f.image.height - 1)),
    "face crop with too few bytes": _crop_case(lambda f: setattr(f.image, "data", bytes(f.image.data)[:100])),
    "face crop of 0x0 pixels": _crop_case(lambda f: (setattr(f.image, "width", 0), setattr(f.image, "height", 0),
                                                     setattr(f.image, "step", 0), setattr(f.image, "data", b""))),
}


#: Cases whose bad faces must not reach these outputs (the face dropped there), and,
#: for every case listed, no output may hold more faces than a landmark node finds.
MUST_DROP = {
    "mesh landmarks of 1e30": ("attention", "emotion/transformer", "emotion/frame", "emotion/image"),
    "mesh landmark of -50 image sizes": ("attention", "emotion/transformer", "emotion/frame", "emotion/image"),
    "blendshape score of 7.5": ("emotion/lstm",),
    "blendshape score of -0.5": ("emotion/lstm",),
    "500 faces in one array": ("attention", "emotion/transformer", "emotion/lstm", "emotion/frame", "emotion/image"),
    "face crop in rgb8": ("emotion/image",),
    "face crop not square": ("emotion/image",),
    "face crop with too few bytes": ("emotion/image",),
    "face crop of 0x0 pixels": ("emotion/image",),
}


def _many(array, n: int):
    """``array`` with its one face repeated ``n`` times (ids face_1..face_n)."""
    out = copy.deepcopy(array)
    out.faces = []
    for i in range(n):
        f = copy.deepcopy(array.faces[0])
        f.face_id = f"face_{i + 1}"
        out.faces.append(f)
    return out


@pytest.fixture(scope="module")
def good_face_msgs(good_rgb):
    """The real FaceMeshArray and BlendshapesArray of the good photo, from the landmark core."""
    from std_msgs.msg import Header

    from emotion_perception.conversions import faces_to_msgs
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions

    from emotion_perception.classifiers.image_cnn import crop_spec
    from emotion_perception.conversions import crops_to_msg
    from emotion_perception.face_crop import crop_geometry, crop_with_geometry

    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lm:
        faces = lm.process(good_rgb, 1)
    assert len(faces) == 1
    spec, f = crop_spec(), faces[0]
    geo = crop_geometry(f.landmarks, f.image_wh, spec.margin)
    crops = crops_to_msg([(f.face_id, crop_with_geometry(good_rgb, geo, spec.size), geo, spec.margin)],
                         Header(frame_id="camera"))
    return (*faces_to_msgs(faces, Header(frame_id="camera")), crops)


def test_bad_messages_downstream_nodes(good_rgb, good_face_msgs, capfd):
    """NaN or wrong-length arrays, unknown ids and classes in our own messages: each
    downstream node logs at most once per case and keeps answering good frames."""
    from pipeline_probe import NODE_OUTPUT, OUTPUTS, constructible_nodes

    from emotion_perception_msgs.msg import BlendshapesArray, EmotionArray, FaceCropArray
    from emotion_perception_msgs.msg import FaceMeshArray as MeshArray

    nodes = constructible_nodes(DOWNSTREAM_NODES)
    assert nodes, "no downstream node can be built"
    outputs = [NODE_OUTPUT[n] for n in nodes]
    mesh, shapes, crops = good_face_msgs
    # Malformed messages are the subject here, not a topic going quiet: the attention
    # node's "no blendshapes for N s" notice must not depend on how slow the machine is.
    with Pipeline(nodes, parameter_overrides={"attention": {"blendshapes_timeout_s": 30.0}}) as p:
        probe = Node("message_probe", context=p.context)
        pubs = {"faces/mesh": probe.create_publisher(MeshArray, "faces/mesh", RESULT_QOS),
                "faces/blendshapes": probe.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS),
                "emotion/frame": probe.create_publisher(EmotionArray, "emotion/frame", RESULT_QOS),
                "faces/crops": probe.create_publisher(FaceCropArray, "faces/crops", RESULT_QOS),
                "image": probe.create_publisher(Image, "image", SENSOR_QOS)}
        got: dict[str, dict[int, object]] = {t: {} for t in outputs}
        cond = threading.Condition()

        def recorder(t):
            def cb(msg):
                with cond:
                    got[t][msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
                    cond.notify_all()
            return cb

        import importlib

        for t in outputs:
            module, cls = OUTPUTS[t]
            probe.create_subscription(getattr(importlib.import_module(module), cls), t, recorder(t), RESULT_QOS)
        p.add_node(probe)
        stamp = [10_000_000_000]

        def publish(items, s):
            for topic, msg in items:
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(s, 1_000_000_000)
                pubs[topic].publish(msg)

        def good_round(timeout=REPLY_TIMEOUT_S):
            """A good image + mesh + blendshapes; True when every node answered it with one face."""
            for _ in range(3):
                stamp[0] += 40_000_000
                s = stamp[0]
                img = _image(good_rgb)
                publish([("image", img), ("faces/mesh", copy.deepcopy(mesh)),
                         ("faces/blendshapes", copy.deepcopy(shapes)), ("faces/crops", copy.deepcopy(crops))], s)
                end = time.monotonic() + timeout / 3
                with cond:
                    while not all(s in got[t] for t in outputs) and time.monotonic() < end:
                        cond.wait(0.05)
                    if all(s in got[t] for t in outputs):
                        return {t: got[t][s] for t in outputs}
            return {t: got[t].get(s) for t in outputs}

        time.sleep(1.0)
        first = good_round(timeout=30.0)
        assert all(v is not None for v in first.values()), f"nodes silent on good input: {first}"
        capfd.readouterr()
        logged: dict[str, int] = {}
        from emotion_perception.types import MAX_FACES_LIMIT

        for name, make in MESSAGE_CASES.items():
            bad_stamps = []
            for _ in range(2):
                stamp[0] += 40_000_000
                bad_stamps.append(stamp[0])
                publish(make(copy.deepcopy(mesh), copy.deepcopy(shapes), crops), stamp[0])
                time.sleep(BAD_SPACING_S)
            reply = good_round()
            with cond:
                for t in MUST_DROP.get(name, ()):
                    for s in bad_stamps:
                        out = got.get(t, {}).get(s)
                        items = [] if out is None else (out.faces if hasattr(out, "faces") else out.emotions)
                        assert len(items) <= MAX_FACES_LIMIT, f"{name}: {t} answered with {len(items)} faces"
                        assert not (name in MUST_DROP and "500" not in name and items), \
                            f"{name}: {t} turned the bad face into a result: {items[0]}"
            silent = [t for t, v in reply.items() if v is None]
            assert not silent, f"{name}: no answer to the next good frame on {silent}"
            for t, msg in reply.items():
                items = msg.faces if hasattr(msg, "faces") else msg.emotions
                assert len(items) >= 1, f"{name}: {t} lost the face of the next good frame"
            err = capfd.readouterr().err
            per_node: dict[str, int] = {}
            for _, node_name in NODE_LOG_LINE.findall(err):
                per_node[node_name] = per_node.get(node_name, 0) + 1
            assert all(v <= 1 for v in per_node.values()), f"{name}: more than one log line per node: {per_node}\n{err}"
            logged[name] = sum(per_node.values())
        # the nodes do recognise bad messages (and the capture sees their lines)
        assert sum(logged.values()) >= 3, f"hardly any bad message was reported: {logged}"


def test_pauses_do_not_start_the_mesh_only_fallback(good_face_msgs, capfd):
    """Meshes and blendshapes that pause together (a camera stopped for 1.3 s, four
    times) never count as blendshapes going quiet: the first mesh after every pause
    used to be processed alone, with "no blendshapes ... processing meshes alone".
    Blendshapes that really stop while meshes go on still start the fallback, said once."""
    from emotion_perception_msgs.msg import AttentionArray, BlendshapesArray
    from emotion_perception_msgs.msg import FaceMeshArray as MeshArray

    mesh, shapes, _ = good_face_msgs
    with Pipeline(["attention"], parameter_overrides={"attention": {"blendshapes_timeout_s": 1.0}}) as p:
        probe = Node("pause_probe", context=p.context)
        mesh_pub = probe.create_publisher(MeshArray, "faces/mesh", RESULT_QOS)
        shapes_pub = probe.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        got: dict[int, AttentionArray] = {}
        cond = threading.Condition()

        def on_attention(msg):
            with cond:
                got[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
                cond.notify_all()

        probe.create_subscription(AttentionArray, "attention", on_attention, RESULT_QOS)
        p.add_node(probe)
        node = p.nodes["attention"]
        end = time.monotonic() + 10.0
        while (mesh_pub.get_subscription_count() == 0 or shapes_pub.get_subscription_count() == 0) and \
                time.monotonic() < end:
            time.sleep(0.05)

        def send(stamp: int, with_shapes: bool = True, wait_s: float = 3.0) -> AttentionArray | None:
            m, b = copy.deepcopy(mesh), copy.deepcopy(shapes)
            for msg in (m, b):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            mesh_pub.publish(m)
            if with_shapes:
                time.sleep(0.03)  # blendshapes come a little after their mesh, as from the landmark node
                shapes_pub.publish(b)
            deadline = time.monotonic() + wait_s
            with cond:
                while stamp not in got and time.monotonic() < deadline:
                    cond.wait(0.05)
                return got.get(stamp)

        stamp = 10_000_000_000
        capfd.readouterr()
        for _ in range(4):
            for _ in range(3):
                stamp += 33_000_000
                assert send(stamp) is not None, "no attention for a frame"
            time.sleep(1.3)
        err = capfd.readouterr().err
        assert "no blendshapes" not in err, f"a pause was taken for missing blendshapes:\n{err}"
        assert node._mesh_only_frames == 0, f"{node._mesh_only_frames} meshes processed alone after pauses"
        # blendshapes really stop while meshes go on: the fallback starts, said once
        for _ in range(45):  # 1.5 s at 30 Hz
            stamp += 33_000_000
            send(stamp, with_shapes=False, wait_s=0.0)
            time.sleep(0.033)
        time.sleep(0.5)
        assert node._mesh_only_frames > 0, "meshes without blendshapes for 1.5 s were never processed alone"
        err = capfd.readouterr().err
        assert err.count("no blendshapes") == 1, err
        probe.destroy_node()
