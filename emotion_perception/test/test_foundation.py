"""Tier 1 and 2 tests of the foundation: model verification, conversions, node
plumbing (parameters, logging once, stamp sync), transport defaults, packaging."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from emotion_perception import __version__, assets, transport
from emotion_perception.types import BLENDSHAPE_NAMES, BoundingBox, EmotionEstimate, Face

PKG = pathlib.Path(__file__).resolve().parents[1]
MSGS = PKG.parent / "emotion_perception_msgs"


# ---------------------------------------------------------------- packaging

def test_one_version_source():
    tree = ET.parse(PKG / "package.xml")
    assert tree.getroot().attrib["format"] == "3"
    assert tree.find("version").text == __version__


def test_blendshape_constants_match_mediapipe_order():
    from emotion_perception_msgs.msg import Blendshapes

    assert Blendshapes.NUM_BLENDSHAPES == len(BLENDSHAPE_NAMES) == 52
    for i, name in enumerate(BLENDSHAPE_NAMES):
        const = "NEUTRAL" if name == "_neutral" else re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
        assert getattr(Blendshapes, const) == i, name


def test_every_message_field_is_documented():
    """Every field has a comment: inline, or the comment block heading its group."""
    for f in sorted((MSGS / "msg").glob("*.msg")):
        lines = [ln.strip() for ln in f.read_text().splitlines()]
        for i, line in enumerate(lines):
            if not line or line.startswith("#") or "=" in line.split("#")[0] or "#" in line:
                continue
            j = i - 1
            while j >= 0 and lines[j] and not lines[j].startswith("#"):
                j -= 1
            assert j >= 0 and lines[j].startswith("#"), f"{f.name}: undocumented field {line!r}"


# ---------------------------------------------------------------- model files

def test_shipped_models_verify():
    p = assets.verified_path("face_landmarker.task")
    assert p.stat().st_size == 3_758_596
    assert assets.sha256_of(p) == "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


def test_tampered_truncated_missing_model_refused(tmp_path):
    src = assets.verified_path("face_landmarker.task")
    good = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
    (tmp_path / "SHA256SUMS").write_text(f"{good}  face_landmarker.task\n")
    target = tmp_path / "face_landmarker.task"
    target.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(assets.ModelFileError, match=f"face_landmarker.task has sha256 .* but {good}"):
        assets.verified_path(target)
    data = bytearray(src.read_bytes())
    data[5000] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(assets.ModelFileError, match="truncated, corrupt"):
        assets.verified_path(target)
    target.unlink()
    with pytest.raises(assets.ModelFileError, match=f"missing \\(expected sha256 {good}\\)"):
        assets.verified_path(target)
    shutil.copy(src, tmp_path / "unlisted.task")
    with pytest.raises(assets.ModelFileError, match="no recorded sha256"):
        assets.verified_path(tmp_path / "unlisted.task")


def test_a_retrained_model_is_recorded_and_then_loads_in_the_same_process(tmp_path):
    """What training does after an export: the new file's sum replaces its old line,
    other lines stay, and the file verifies at once (the sums are cached per folder)."""
    model = tmp_path / "m.tflite"
    model.write_bytes(b"first")
    (tmp_path / "other.json").write_text("{}")
    assets.record_sums([model, tmp_path / "other.json"])
    assert assets.verified_path(model) == model
    model.write_bytes(b"second")  # retrained: the recorded sum is now stale
    with pytest.raises(assets.ModelFileError):
        assets.verified_path(model)
    assets.record_sums([model])
    assert assets.verified_path(model) == model
    lines = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert [ln.split()[1] for ln in lines] == ["other.json", "m.tflite"]
    assert assets.verified_path(tmp_path / "other.json")
    with pytest.raises(ValueError, match="one folder"):
        assets.record_sums([model, tmp_path.parent / "elsewhere.json"])


# ---------------------------------------------------------------- conversions

def _face(face_id="face_1") -> Face:
    rng = np.random.default_rng(0)
    return Face(face_id=face_id, landmarks=rng.random((478, 3), dtype=np.float32),
                blendshapes=rng.random(52, dtype=np.float32), transform=np.eye(4, dtype=np.float32),
                bbox=BoundingBox(10, 20, 100, 120), score=0.9, image_wh=(640, 480))


def test_face_round_trip_through_messages():
    from std_msgs.msg import Header

    from emotion_perception import conversions as cv

    face = _face()
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    meshes, shapes = cv.faces_to_msgs([face], header)
    assert meshes.header == header and shapes.header == header
    assert meshes.faces[0].header == header
    back = cv.mesh_msg_to_face(meshes.faces[0], shapes.faces[0])
    np.testing.assert_allclose(back.landmarks, face.landmarks)
    np.testing.assert_allclose(back.blendshapes, face.blendshapes)
    np.testing.assert_allclose(back.transform, face.transform)
    assert back.bbox == face.bbox and back.image_wh == face.image_wh and back.face_id == "face_1"
    empty_m, empty_s = cv.faces_to_msgs([], header)
    assert empty_m.faces == [] and empty_s.faces == [] and empty_m.header == header


def test_bad_messages_raise_conversion_errors():
    from std_msgs.msg import Header

    from emotion_perception import conversions as cv

    meshes, shapes = cv.faces_to_msgs([_face()], Header())
    m, s = meshes.faces[0], shapes.faces[0]
    m.x = m.x[:100]
    with pytest.raises(cv.ConversionError, match="x has 100 values, expected 478"):
        cv.mesh_msg_to_face(m)
    meshes, shapes = cv.faces_to_msgs([_face()], Header())
    s = shapes.faces[0]
    s.scores[3] = float("nan")
    with pytest.raises(cv.ConversionError, match="NaN"):
        cv.blendshapes_msg_scores(s)
    other = cv.faces_to_msgs([_face("face_2")], Header())[1].faces[0]
    with pytest.raises(cv.ConversionError, match="paired with"):
        cv.mesh_msg_to_face(meshes.faces[0], other)


def test_emotion_round_trip_and_validation():
    from std_msgs.msg import Header

    from emotion_perception import conversions as cv

    est = EmotionEstimate("face_3", ("happy", "sad", "unknown"), np.array([0.7, 0.2, 0.1], np.float32),
                          model="lstm-3class", frames_used=12, confident=True, valence=0.5, arousal=0.1)
    msg = cv.estimate_to_emotion_msg(est, Header())
    assert msg.label == "happy" and abs(msg.confidence - 0.7) < 1e-6 and msg.frames_used == 12
    back = cv.emotion_msg_to_estimate(msg)
    assert back.label == "happy" and back.model == "lstm-3class"
    msg.probabilities = [0.5, 0.2, 0.1]
    with pytest.raises(cv.ConversionError, match="not a distribution"):
        cv.emotion_msg_to_estimate(msg)


# ---------------------------------------------------------------- node plumbing

def test_param_checks():
    from emotion_perception.nodes.parameters import Param

    p = Param("max_faces", 2, "faces", low=1, high=8)
    assert p.check(4) is None
    assert p.check(9) == "max_faces expects an integer in the range [1, 8], got the integer 9"
    assert "integer" in p.check(2.5) and "2.5" in p.check(2.5)
    assert "integer" in p.check("two") and "string 'two'" in p.check("two")
    r = Param("rate_hz", 10.0, "rate", low=0.1, high=100.0)
    assert r.check(r.coerce(5)) is None, "an integer for a floating-point parameter"
    assert "floating-point number in the range [0.1, 100.0]" in r.check(float("nan"))
    s = Param("model", "svm-blendshapes", "which", choices=("svm-blendshapes", "svm-landmarks"))
    assert "one of: svm-blendshapes, svm-landmarks, got the string 'nope'" in s.check("nope")
    b = Param("use_compressed", False, "flag")
    assert "bool" in b.check(1)


def test_stamp_sync_pairs_and_bounds_memory():
    from emotion_perception.nodes.stamps import StampSync

    sync = StampSync(2, max_pending=5)
    assert sync.add(0, 1, "a1") is None
    assert sync.add(1, 1, "b1") == ("a1", "b1")
    for t in range(10, 30):
        assert sync.add(0, t, f"a{t}") is None
    assert len(sync._pending) == 5 and sync.unmatched >= 15
    assert sync.add(1, 29, "b29") == ("a29", "b29")


def test_memory_trim_gives_a_peak_back_and_then_leaves_the_steady_level_alone(monkeypatch):
    """MemoryTrim judged on anonymous memory: a peak is trimmed, with glibc's small
    thresholds meanwhile; once the level is back within grow_ratio of the one before,
    trimming stops and the thresholds that let camera buffers be reused come back. A
    trim that dips below the steady level (the free chunks the next frames reuse given
    back too) does not lower the bound onto the steady level, which would trim it every
    interval for good with the thresholds lowered."""
    from emotion_perception.nodes import memory

    trim = memory.MemoryTrim(grow_ratio=1.10, interval_s=0.0, restore_after_s=0.0)
    level = {"anon": 160.0, "after_trim": None}
    calls = {"trims": 0, "mallopt": []}

    def fake_trim(_pad):
        calls["trims"] += 1
        level["anon"] = level["after_trim"]

    monkeypatch.setattr(trim, "_trim", fake_trim)
    monkeypatch.setattr(trim, "_mallopt", lambda param, value: calls["mallopt"].append((param, value)))
    monkeypatch.setattr(trim, "anon_mb", lambda: level["anon"])
    monkeypatch.setattr(trim, "rss_mb", lambda: level["anon"] + 150.0)  # + shared memory and files: not judged
    monkeypatch.setattr(memory, "_large_buffers_kept", True)

    trim.check()  # the level before
    level["anon"] = 170.0  # +6%: within bounds, nothing to do
    trim.check()
    assert calls["trims"] == 0 and not trim._lowered
    level.update(anon=300.0, after_trim=150.0)  # a peak; the trim dips below the steady level
    trim.check()
    assert calls["trims"] == 1 and trim._lowered
    assert (memory._M_MMAP_THRESHOLD, memory._LOWERED_MMAP_THRESHOLD) in calls["mallopt"]
    for _ in range(5):  # the frames bring it back to 172 (+7.5% of 160, +14.7% of the dip)
        level["anon"] = 172.0
        trim.check()
    assert calls["trims"] == 1, "the steady level was trimmed again"
    assert not trim._lowered
    assert calls["mallopt"][-2:] == [(memory._M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD_BYTES),
                                     (memory._M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD_BYTES)]
    level.update(anon=200.0, after_trim=165.0)  # the next peak is judged against 160 again
    trim.check()
    assert calls["trims"] == 2 and trim.freed_mb == pytest.approx(150.0 + 35.0)

    # a small node (40 MB): +20% is two camera frames in flight, not a peak; +16 MB is
    small = memory.MemoryTrim(grow_ratio=1.10, interval_s=0.0, restore_after_s=0.0)
    small_calls = []
    monkeypatch.setattr(small, "_trim", lambda _pad: small_calls.append(1) or level.update(anon=41.0))
    monkeypatch.setattr(small, "_mallopt", lambda param, value: None)
    monkeypatch.setattr(small, "anon_mb", lambda: level["anon"])
    for anon in (40.0, 48.0, 55.0):
        level["anon"] = anon
        small.check()
    assert small_calls == []
    level["anon"] = 57.0
    small.check()
    assert small_calls == [1]


def test_transport_default_respects_user_choice():
    import xml.etree.ElementTree as ET

    env = {}
    profile = transport.configure_process(env)
    # the name this distribution's Fast DDS reads (see the test below), and the profile's
    # reader and writer settings switched on
    assert env == {**{k: profile for k in transport.profile_variables()}, "RMW_FASTRTPS_USE_QOS_FROM_XML": "1"}
    assert len(env) == 2
    # the shipped profile: builtin transports off, shared memory with room for a 1080p frame, UDP
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(profile).getroot()
    kinds = {d.findtext("d:transport_id", namespaces=ns): d for d in root.iterfind(".//d:transport_descriptor", ns)}
    assert sorted(d.findtext("d:type", namespaces=ns) for d in kinds.values()) == ["SHM", "UDPv4"]
    shm = next(d for d in kinds.values() if d.findtext("d:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=ns)) >= 2 * 1920 * 1080 * 3
    used = [t.text for t in root.iterfind(".//d:participant//d:userTransports/d:transport_id", ns)]
    assert sorted(used) == sorted(kinds)
    assert root.findtext(".//d:participant//d:useBuiltinTransports", namespaces=ns) == "false"
    # readers free each sample's buffer (a 192 MB frame once stayed resident for good)
    assert root.findtext(".//d:data_reader/d:historyMemoryPolicy", namespaces=ns) == "DYNAMIC"
    # a choice of the user's own is left alone
    env = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}
    assert transport.configure_process(env) == "UDPv4" and env == {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}
    for name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        env = {name: "/x.xml"}  # the user's profile, under either name, reaches this Fast DDS
        assert transport.configure_process(env) == "/x.xml"
        assert env == {name: "/x.xml", **{k: "/x.xml" for k in transport.profile_variables()}}
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/a.xml", "FASTDDS_DEFAULT_PROFILES_FILE": "/b.xml"}
    transport.configure_process(env)
    assert env == {"FASTRTPS_DEFAULT_PROFILES_FILE": "/a.xml", "FASTDDS_DEFAULT_PROFILES_FILE": "/b.xml"}


def test_profile_variable_is_the_one_this_distributions_fast_dds_reads():
    """Kilted (rclpy 9, Fast DDS 3) reads FASTDDS_... and warns at every start about a
    set FASTRTPS_...; Jazzy (rclpy 7, Fast DDS 2.14) reads only FASTRTPS_...."""
    from importlib.metadata import version

    major = int(version("ros-rclpy").split(".")[0])
    want = {9: ("FASTDDS_DEFAULT_PROFILES_FILE",), 7: ("FASTRTPS_DEFAULT_PROFILES_FILE",)}[major]
    assert transport.profile_variables() == want


def test_node_parameters_validated_at_start_and_at_runtime():
    """A real node on a real context: bad start values refuse, bad updates are rejected."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.bad_input import OnceLog
    from emotion_perception.nodes.parameters import Param, ParameterError, declare_parameters

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        params = [Param("rate_hz", 10.0, "rate", low=0.1, high=100.0), Param("max_faces", 2, "faces", low=1, high=8),
                  Param("model", "a", "which model", choices=("a", "b"))]
        node = Node("plumbing_test", context=ctx)
        values = declare_parameters(node, params)
        assert values == {"rate_hz": 10.0, "max_faces": 2, "model": "a"}
        result = node.set_parameters([Parameter("max_faces", value=50)])[0]
        assert not result.successful and "max_faces" in result.reason and "50" in result.reason
        assert "integer in the range [1, 8]" in result.reason, result.reason
        assert node.get_parameter("max_faces").value == 2
        assert node.set_parameters([Parameter("rate_hz", value=30.0)])[0].successful
        assert values["rate_hz"] == 30.0
        result = node.set_parameters([Parameter("model", value="c")])[0]
        assert not result.successful and "model expects a string, one of: a, b, got the string 'c'" == result.reason
        assert node.get_parameter("model").value == "a"
        node.destroy_node()

        bad = Node("plumbing_bad", context=ctx, parameter_overrides=[Parameter("max_faces", value=0)])
        with pytest.raises(ParameterError, match="max_faces.*out of range"):
            declare_parameters(bad, params)
        bad.destroy_node()

        logs = Node("plumbing_log", context=ctx)
        once = OnceLog(logs, repeat_s=60)
        for _ in range(50):
            once.error("enc", "unsupported encoding yuv422")
        assert once.count("enc") == 50
        logs.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_pipeline_rejects_unknown_node_and_bad_remap():
    from emotion_perception.runner import Pipeline, ros_args

    with pytest.raises(ValueError, match="unknown node 'camera'"):
        Pipeline(["camera"])
    with pytest.raises(ValueError, match="from:=to"):
        ros_args(remaps=["image=/cam"])
    assert ros_args("p.yaml", ["image:=/cam/image_raw"], "robot") == [
        "--ros-args", "--params-file", "p.yaml", "-r", "image:=/cam/image_raw", "-r", "__ns:=/robot"]


BUSY_STOP_SCRIPT = """
import gc, time
import numpy as np
from rclpy.node import Node
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from sensor_msgs.msg import Image
from emotion_perception.conversions import rgb_to_image_msg
from emotion_perception.nodes.qos import SENSOR_QOS
from emotion_perception.runner import Pipeline

grey = np.full((480, 640, 3), 90, np.uint8)
for run in range(4):
    with Pipeline(["landmark", "attention"]) as p:
        pub = Node("camera", context=p.context).create_publisher(Image, "image", SENSOR_QOS)
        for k in range(20):
            pub.publish(rgb_to_image_msg(grey, Header(stamp=Time(sec=1, nanosec=k * 33_000_000))))
            time.sleep(0.01)
    gc.collect()
    print("stopped", run, flush=True)
"""


def test_stopping_a_busy_pipeline_is_quiet():
    """Stopping the in-process runner while callbacks are in flight (what every
    ``emotion-perception run`` and test does) neither raises nor prints rclpy's
    "exception was never retrieved: cannot use Destroyable" (an rclpy shutdown race:
    9 such lines in 6 stops while the runner shut a MultiThreadedExecutor down under
    running callbacks)."""
    r = subprocess.run([sys.executable, "-c", BUSY_STOP_SCRIPT], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split().count("stopped") == 4, r.stdout
    assert "never retrieved" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]


DEDICATED_SCRIPT = """
import json, sys
import cv2
from threadpoolctl import threadpool_info
from emotion_perception import runner
cv2_before = cv2.getNumThreads()
if sys.argv[1] == "dedicated":
    runner.dedicate_process()
with runner.Pipeline(["frame"]):
    pools = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    cv2_during = cv2.getNumThreads()
print(json.dumps({"pools": pools, "cv2": [cv2_before, cv2_during]}))
"""


@pytest.mark.parametrize("mode", ["dedicated", "library"])
def test_a_dedicated_process_caps_native_thread_pools(mode):
    """The command-line tools that run the nodes (dedicate_process) cap BLAS/OpenMP at one
    thread once the nodes are built, as a node's own process does: with OpenBLAS's
    default pools the in-process pipeline used 125% of a core at 30 Hz instead of 46%.
    OpenCV's own pool too (its spinning thread cost 0.6 ms of CPU per frame for the
    crops). A library caller's process (a test run, a notebook) keeps its pools."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", DEDICATED_SCRIPT, mode], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    pools, (cv2_before, cv2_during) = got["pools"], got["cv2"]
    assert pools, "no BLAS/OpenMP pool loaded with the frame node (test broken)"
    if mode == "dedicated":
        assert all(n == 1 for _, n in pools), pools
        assert cv2_during == 1, got
    else:  # the libraries' own default: a thread per core
        assert max(n for _, n in pools) == len(os.sched_getaffinity(0)), pools
        assert cv2_during == cv2_before, got


def test_documented_commands_parse():
    """Every concrete ``emotion-perception ...`` command line in the README and docs/
    (no placeholders such as FILE, [--option] or ...) is accepted by the command's
    parser: the README once showed ``pipeline --nodes ... -r ...``, options it never had."""
    from emotion_perception.cli import build_parser

    repo = PKG.parent
    found = []
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            m = re.match(r"\s*(?:\.venv/bin/)?emotion-perception (.+)$", line)
            if not m or m.group(1).rstrip().endswith("\\"):  # none, or continued on the next line
                continue
            words = shlex.split(m.group(1).split("  #")[0], posix=True)
            if "--help" in words or any(re.search(r"[\[\]<>]|\.\.\.|^[A-Z]+$", w) for w in words):
                continue
            found.append((doc.name, words))
    assert len(found) >= 5, found
    parser = build_parser()
    for name, words in found:
        try:
            parser.parse_args(words)
        except SystemExit:
            raise AssertionError(f"{name}: emotion-perception {' '.join(words)} does not parse") from None
