"""Faults a camera stream on a robot produces, against the running nodes over the real
middleware: faces entering and leaving, time jumping backwards, the camera publisher
restarting, a slow consumer, and a short 4x overload (1080p at 120 Hz).

Each checks the behaviour the robot relies on: per-face state starts fresh for a new
face, ids are never reused, "no face" is said promptly, and the pipeline recovers
within a second without a restart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest

from emotion_perception import transport
from emotion_perception.nodes.diagnostics import Diagnostics
from emotion_perception.runner import Pipeline

from conftest import DATA, clip_frames, own_ros_domain_fixture, read_rgb
from pipeline_probe import DOWNSTREAM, NODE_OUTPUT, Probe, constructible_nodes, image_msg, stamp_of

#: The robot-facing promise: back to normal within this long after a fault, s.
RECOVERY_S = 1.0
FACE_PHOTO = DATA / "muxspace" / "images" / "Colin_Powell_0145.jpg"


own_ros_domain = own_ros_domain_fixture(120)


@pytest.fixture(scope="module")
def nodes():
    """landmark plus every downstream node that can be built in this checkout."""
    names = ["landmark", *constructible_nodes(DOWNSTREAM)]
    return names


@pytest.fixture(scope="module")
def face_rgb():
    rgb = read_rgb(FACE_PHOTO)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[65:415, 145:495] = rgb
    return canvas


def _frames(name: str, step: int = 1):
    fps, frames = clip_frames(name, step)
    return [(int(i * 1e9 / fps), rgb) for i, rgb in frames]


def _ids(mesh_msg) -> list[str]:
    return [f.face_id for f in mesh_msg.faces]


@pytest.mark.parametrize("video,face_at_start", [("face_noface.mp4", True), ("noface_face.mp4", False)])
def test_faces_entering_and_leaving(nodes, video, face_at_start):
    frames = _frames(video, step=2)
    topics = [NODE_OUTPUT[n] for n in nodes]
    base = 5_000_000_000
    with Pipeline(nodes, parameter_overrides={"landmark": {"max_faces": 2}}) as p:
        probe = Probe(p, topics)
        per_frame = []
        for stamp, rgb in frames:
            r = probe.send_until_served(rgb, base + stamp)
            assert r is not None, f"{video}: no result for the frame at {stamp / 1e9:.2f} s"
            assert probe.wait_all(topics, base + stamp, timeout=5.0), \
                f"{video}: not every node answered the frame at {stamp / 1e9:.2f} s: " \
                f"{[t for t in topics if base + stamp not in probe.got[t]]}"
            per_frame.append(_ids(r[0]))
        with_face = [bool(ids) for ids in per_frame]
        assert any(with_face) and not all(with_face), f"{video}: the clip should hold a face only part of the time"
        # the clip's first frames are all one way; its last ones mostly the other
        # (MediaPipe loses the face in the very last frame of noface_face)
        assert all(w == face_at_start for w in with_face[:10]), with_face
        assert sum(w != face_at_start for w in with_face[-10:]) >= 8, with_face

        # ids are never reused: once an id has gone it never comes back
        gone: set[str] = set()
        present: set[str] = set()
        for ids in per_frame:
            for i in ids:
                assert i not in gone, f"{video}: id {i} reused after it left"
            gone |= present - set(ids)
            present = set(ids)

        # "no face" promptly: every node answers a faceless image with an empty array
        # for that very image, and the first faceless image right after a face is
        # answered within RECOVERY_S of the mesh
        stamps = [base + s for s, _ in frames]
        for k, (s, ids) in enumerate(zip(stamps, per_frame)):
            if ids:
                continue
            for t in topics:
                msg, t_recv = probe.got[t][s]
                items = msg.faces if hasattr(msg, "faces") else msg.emotions
                assert len(items) == 0, f"{video}: {t} still reports a face at a faceless image"
                if k and per_frame[k - 1]:
                    assert t_recv - probe.got["faces/mesh"][s][1] < RECOVERY_S

        # per-face state is reset: a sequence model's first estimate of a new id rests on one frame
        for t in ("emotion/transformer", "emotion/lstm"):
            if t not in topics:
                continue
            first: dict[str, int] = {}
            for s in stamps:
                for e in probe.got[t][s][0].emotions:
                    first.setdefault(e.face_id, e.frames_used)
            assert first, f"{video}: {t} never estimated the face"
            assert all(v == 1 for v in first.values()), f"{video}: {t} carried state into a new face: {first}"


def test_time_jumps_backwards(nodes, face_rgb):
    """A looping bag: stamps jump back 60 s; results continue at once with new ids."""
    topics = [NODE_OUTPUT[n] for n in nodes]
    with Pipeline(nodes, parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, topics)
        t0 = 100_000_000_000
        before = []
        for k in range(10):
            r = probe.send_until_served(face_rgb, t0 + k * 33_000_000)
            assert r is not None
            before += _ids(r[0])
        jump = t0 - 60_000_000_000
        sent = time.monotonic()
        r = probe.send_until_served(face_rgb, jump, timeout=RECOVERY_S * 3)
        assert r is not None, "no result after time jumped back"
        missing = [t for t in topics if not probe.wait_all([t], jump, timeout=RECOVERY_S * 3)]
        assert not missing, f"no answer on {missing} after time jumped back 60 s (a node that drops " \
                            "stamps older than the last one never recovers from a looping bag)"
        took = max(probe.got[t][jump][1] for t in topics) - sent
        assert took < RECOVERY_S, f"every node answered {took:.2f} s after the jump"
        after = []
        for k in range(1, 10):
            r = probe.send_until_served(face_rgb, jump + k * 33_000_000)
            assert r is not None and len(r[0].faces) == 1
            after += _ids(r[0])
        assert set(before).isdisjoint(after), f"ids reused across the time jump: {set(before)} / {set(after)}"


#: Camera rate of the stamp-fault streams, Hz (the issue's 30 Hz), and their length, s.
STREAM_HZ = 30.0
STREAM_S = 4.0
#: Fewest images the landmark node must process for a stamp-fault run to say anything.
MIN_PROCESSED = 15


def _stream(probe, rgb, stamps) -> None:
    """Publish one frame per stamp at STREAM_HZ (one prebuilt message, restamped)."""
    msg = image_msg(rgb, 0)
    start = time.monotonic()
    for k, stamp in enumerate(stamps):
        probe.publish_msg(msg, stamp)
        time.sleep(max(0.0, start + (k + 1) / STREAM_HZ - time.monotonic()))


def _stream_after_warm_up(probe, topics, rgb, warm_stamp: int, stamps, capfd, pipeline=None) -> dict:
    """One frame every node answers, records and log cleared, then the stream and 2 s
    for the last results. Returns each node's processed count before the stream
    (:func:`_processed`) when ``pipeline`` is given."""
    assert probe.send_until_served(rgb, warm_stamp, timeout=15.0) is not None
    assert all(probe.wait(t, warm_stamp, 15.0) for t in topics), "the pipeline did not answer a first frame"
    time.sleep(0.5)
    with probe.cond:
        for t in topics:
            probe.arrays[t].clear()
    before = _processed(pipeline) if pipeline is not None else {}
    capfd.readouterr()
    _stream(probe, rgb, stamps)
    time.sleep(2.0)
    return before


def _processed(pipeline) -> dict[str, int]:
    """Short node name -> arrays (images) it has handled so far (its /diagnostics
    processed_total; the nodes run in this process)."""
    out = {}
    for name, node in pipeline.nodes.items():
        diag = Diagnostics.of(node)
        out[name] = diag.processed if diag is not None else 0
    return out


def _outputs_per_image(probe, topics) -> dict[str, tuple[int, int]]:
    """topic -> (images answered, arrays received) over the images faces/mesh answered."""
    with probe.cond:
        processed = {m.image_seq for m in probe.arrays["faces/mesh"]}
        return {t: (len(processed & {m.image_seq for m in probe.arrays[t]}), len(probe.arrays[t])) for t in topics}


def _check_one_output_per_image(probe, topics, sent: int, what: str, pipeline, before: dict) -> None:
    """What the design guarantees, on a quiet or a busy machine: every output names an
    image the landmark node processed, none twice, none out of order; and nothing is
    lost where no queue overflowed. Over reliable topics an array is lost only where a
    keep-last queue overflowed (a node, or this probe, too far behind): a node that
    handled fewer arrays than the landmark node published, or a topic on which this
    probe received fewer arrays than its node published, says so (the nodes' counts,
    as /diagnostics reports them). How many images are answered under load is a
    benchmark figure (benchmarks/stamps.py), not asserted here."""
    with probe.cond:
        meshes = list(probe.arrays["faces/mesh"])
        arrays = {t: list(probe.arrays[t]) for t in topics}
    processed = {m.image_seq for m in meshes}
    assert 0 not in processed, f"{what}: faces/mesh without an image_seq"
    # How many it processes depends on the machine (a 2-core runner at load 13 processed
    # a fifth; the drops are counted): the 30 Hz target is measured by
    # benchmarks/stamps.py, with every node in its own process.
    assert len(processed) >= MIN_PROCESSED, f"{what}: the landmark node processed {len(processed)} of {sent} images"
    counts = {n: c - before.get(n, 0) for n, c in _processed(pipeline).items()}
    published = counts["landmark"]  # arrays the landmark node published on each of its topics
    assert len(meshes) == published, f"{what}: {published} meshes published, {len(meshes)} arrived"
    print(f"{what}: {sent} images sent, {published} processed; per output (answered, arrays): "
          f"{_outputs_per_image(probe, topics)}; handled per node: {counts}")
    for node, t in ((n, NODE_OUTPUT[n]) for n in pipeline.nodes):
        seqs = [m.image_seq for m in arrays[t]]
        assert len(seqs) == len(set(seqs)), f"{what}: {t} answered an image twice"
        assert seqs == sorted(seqs), f"{what}: {t} answered images out of order"
        assert set(seqs) <= processed | {0}, f"{what}: {t} answered an image the landmark node did not process"
        # this probe's readers are deep enough to lose nothing: what a node published arrived
        assert len(seqs) == counts[node], \
            f"{what}: {t} carried {len(seqs)} arrays, its node handled {counts[node]} images ({counts})"
        # A node that handled fewer images than the landmark node published lost the rest
        # in its input queue (keep-last, 10 deep: it fell that far behind); none lost
        # there means every image answered.
        lost_in_queue = published - counts[node]
        assert lost_in_queue >= 0, (what, t, counts)
        if lost_in_queue == 0:
            assert set(seqs) == processed, f"{what}: {t} lost images with no queue overflowing ({counts})"


@pytest.mark.parametrize("fault", ["stamp 0", "every stamp twice"])
def test_unstamped_and_frozen_stamp_cameras_get_one_output_per_image(nodes, face_rgb, fault, capfd):
    """A USB camera driver that leaves header.stamp at 0, or one that repeats every
    stamp: every image still gets its mesh, emotion and attention (300 frames at stamp
    0 once gave 300 meshes but 1 emotion and 1 attention), told apart by the landmark
    node's image_seq; the landmark node says once what the stamps lack."""
    topics = [NODE_OUTPUT[n] for n in nodes]
    n = int(STREAM_HZ * STREAM_S)
    base = 50_000_000_000
    stamps = [0] * n if fault == "stamp 0" else [base + (k // 2) * 66_000_000 for k in range(n)]
    with Pipeline(nodes, parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, topics)
        before = _stream_after_warm_up(probe, topics, face_rgb, base - 1_000_000_000, stamps, capfd, p)
        _check_one_output_per_image(probe, topics, n, fault, p, before)
        err = capfd.readouterr().err
        said = [ln for ln in err.splitlines() if "[landmark_node]" in ln and ("no stamp" in ln or "repeat" in ln)]
        assert len(said) == 1, f"{fault}: not one log line about the stamps:\n{err}"


def test_late_frames_keep_their_face_id_and_their_outputs(nodes, face_rgb, capfd):
    """Every 10th frame stamped 200 ms before its predecessor (network jitter, a driver
    that reorders): one face id throughout (it once ended the track: 7 ids in 60
    frames) and every late frame still gets its outputs, in arrival order."""
    topics = [NODE_OUTPUT[n] for n in nodes]
    n = int(STREAM_HZ * STREAM_S)
    base = 70_000_000_000
    stamps = []
    for k in range(n):
        s = base + k * 33_333_333
        stamps.append(stamps[-1] - 200_000_000 if k % 10 == 9 else s)
    with Pipeline(nodes, parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, topics)
        # warm-up just before the stream: a gap over track_max_gap_s would end the track
        before = _stream_after_warm_up(probe, topics, face_rgb, base - 100_000_000, stamps, capfd, p)
        _check_one_output_per_image(probe, topics, n, "10% late frames", p, before)
        with probe.cond:
            meshes = list(probe.arrays["faces/mesh"])
        ids = {f.face_id for m in meshes for f in m.faces}
        assert len(ids) == 1, f"late frames churned the face id: {sorted(ids)}"
        assert all(len(m.faces) == 1 for m in meshes), "a frame lost its face"
        late = {stamps[k] for k in range(9, n, 10)}
        late_served = {stamp_of(m) for m in meshes} & late
        # how many of them the landmark node processes rather than drops at its queue
        # depends on the machine's load (its drops are counted): one is enough to check
        assert late_served, f"none of the {len(late)} late frames processed"
        # every late frame processed is answered by every node whose input queue lost
        # nothing (_check_one_output_per_image: where one overflowed, it says so)
        counts = {n: c - before.get(n, 0) for n, c in _processed(p).items()}
        for node in p.nodes:
            t = NODE_OUTPUT[node]
            with probe.cond:
                answered = {stamp_of(m) for m in probe.arrays[t]} & late_served
            if counts[node] == counts["landmark"]:
                assert answered == late_served, \
                    f"{t} answered {len(answered)} of the {len(late_served)} late frames processed ({counts})"
        err = capfd.readouterr().err
        said = [ln for ln in err.splitlines() if "[landmark_node]" in ln and "older than the previous" in ln]
        assert len(said) == 1, f"not one log line about late frames:\n{err}"


PUBLISHER = textwrap.dedent("""
    import sys, time, cv2, rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from emotion_perception import transport
    transport.configure_process()
    rgb = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
    seconds = float(sys.argv[2])
    rclpy.init()
    node = Node("camera_publisher")
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    end = time.monotonic() + seconds
    first = matched = None
    while time.monotonic() < end:
        m = Image()
        t = time.time_ns()
        first = first or t
        if matched is None and pub.get_subscription_count() > 0:
            matched = t
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(t, 1_000_000_000)
        m.height, m.width = rgb.shape[:2]
        m.encoding, m.step, m.data = "rgb8", rgb.shape[1] * 3, rgb.tobytes()
        pub.publish(m)
        time.sleep(1 / 15)
    print(first, matched or 0, flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
""")


def test_camera_publisher_restarts():
    """A camera driver process stops and a new one starts (publishing at once, as a
    driver does): frames flow again within a second of DDS matching the new driver
    with the node, with no restart of the node. The DDS discovery time itself (from
    the driver's first image to the match) is printed, not asserted: it is the
    middleware's, about 1.5-3 s on this loaded 2-core machine."""
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, ["faces/mesh"])
        env = dict(os.environ)
        firsts = []
        for run in range(2):
            r = subprocess.run([sys.executable, "-c", PUBLISHER, str(FACE_PHOTO), "5.0"], env=env,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr[-2000:]
            first, matched = (int(v) for v in r.stdout.split()[-2:])
            assert matched, f"publisher run {run + 1}: never matched the node's subscription in 5 s"
            firsts.append((first, matched))
        time.sleep(0.5)
        with probe.cond:
            stamps = sorted(probe.got["faces/mesh"])
        for k, (first, matched) in enumerate(firsts):
            served = [s for s in stamps if s >= first and (k + 1 == len(firsts) or s < firsts[k + 1][0])]
            assert served, f"publisher run {k + 1}: no frame served"
            delay = (served[0] - matched) / 1e9
            print(f"publisher run {k + 1}: discovery {(matched - first) / 1e9:.2f} s, first frame served "
                  f"{delay:.2f} s after the match, {len(served)} served")
            assert delay < RECOVERY_S, f"publisher run {k + 1}: first frame served {delay:.2f} s after the match"
            assert len(served) >= 5, f"publisher run {k + 1}: only {len(served)} frames served after the match"


LOSSY_CAMERA = textwrap.dedent("""
    import sys, time, cv2, numpy as np, rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from emotion_perception import transport
    photo, mode = sys.argv[1], sys.argv[2]
    if mode == "profile":
        transport.configure_process()  # the package's transport, as docs/transport.md asks of a camera
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB), (640, 480))
    rclpy.init()
    node = Node("lossy_camera")
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    end = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.1)
    time.sleep(1.0)
    def image(pixels, k):
        m = Image()
        m.header.stamp.sec, m.header.stamp.nanosec = 100 + k // 10, (k % 10) * 100_000_000
        m.height, m.width = pixels.shape[:2]
        m.encoding, m.step, m.data = "rgb8", pixels.shape[1] * 3, pixels.tobytes()
        return m
    frames = 20 if mode == "profile" else 90
    for k in range(frames):
        if mode == "profile" and k == 10:
            pub.publish(image(np.full((8000, 8000, 3), 120, np.uint8), k))  # 192 MB: more than a 16 MiB segment
        else:
            pub.publish(image(rgb, k))
        time.sleep(0.1 if mode == "profile" else 1 / 30)
    time.sleep(1.0)
    print(frames, flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
""")


def _run_camera(mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if mode == "profile" or k not in (
        "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS",
        "RMW_FASTRTPS_USE_QOS_FROM_XML")}
    r = subprocess.run([sys.executable, "-c", LOSSY_CAMERA, str(FACE_PHOTO), mode], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


#: Jazzy's middleware: its writers drop what their transport cannot carry unnumbered.
FAST_DDS_2 = transport.profile_variables() == (transport.LEGACY_PROFILE_ENV,)


def test_frames_the_transport_cannot_carry_are_counted_and_said(capfd):
    """A camera process sends one 8000x8000 rgb8 frame (192 MB, more than the 16 MiB
    shared-memory segment) among 640x480 ones: it must be refused or carried, never lost
    silently (it once vanished with no log and bad_input_total 0). A camera without the
    package's transport profile (default Fast DDS transports: most 640x480 frames lost
    as UDP fragments) is said to look like a transport mismatch, once."""
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, ["faces/mesh"])
        node = p.nodes["landmark"]
        capfd.readouterr()
        _run_camera("profile")
        time.sleep(1.5)
        snap = node._diag.snapshot()
        err = capfd.readouterr().err
        lines = [ln for ln in err.splitlines() if "[landmark_node]" in ln and ("never reached" in ln or
                                                                            "8000x8000" in ln)]
        print(f"oversized frame: bad_input_total {snap['bad_input_total']}, lost {node._lost}, "
              f"served {len(probe.arrays['faces/mesh'])}, lines {lines}")
        assert len(probe.arrays["faces/mesh"]) >= 10, "the normal frames around it were not served"
        # what such a frame does to memory: test_memory_returns_after_overload_bursts
        _run_camera("default transports")
        time.sleep(1.0)
        err = capfd.readouterr().err
        said = [ln for ln in err.splitlines() if "another Fast DDS transport" in ln]
        print(f"default transports: lost {node._lost}; served {len(probe.arrays['faces/mesh'])}; {said}")
        if FAST_DDS_2:
            # Fast DDS 2.x (Jazzy): the writer drops what its transport cannot carry before
            # numbering it, so the node sees no gap (measured: 40 of 90 frames served, no
            # gap, nothing said; docs/transport.md)
            assert node._lost == 0 and said == [], said
        else:
            assert len(said) == 1, f"a camera losing most frames was not said to mismatch, once:\n{err}"


def _proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


#: How far over its level before two overload bursts the landmark node's resident memory
#: may be 30 s after them (the issue's target, 10% within a minute, is measured by
#: benchmarks/memory.py: 4 bursts; a 2-core CI runner shares memory behaviour with it
#: but not its timing). It kept +124% before the fix; +1% here since (2026-12-01).
MEMORY_AFTER_OVERLOAD = 1.15


MEMORY_CAMERA = textwrap.dedent("""
    import json, sys, threading, time, cv2, numpy as np, rclpy, rclpy.executors
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from emotion_perception import transport
    from emotion_perception.nodes.qos import RESULT_QOS
    from emotion_perception_msgs.msg import FaceMeshArray
    transport.configure_process()  # the camera loads the package's profile, as docs/transport.md asks
    photo, pid = sys.argv[1], int(sys.argv[2])
    def rss():
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    face = cv2.resize(cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB), (350, 350))
    small = np.full((480, 640, 3), 90, np.uint8); small[65:415, 145:495] = face
    big = np.full((1080, 1920, 3), 90, np.uint8); big[290:640, 785:1135] = face
    rclpy.init()
    node = Node("memory_camera")
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    got, diag = [], {}
    node.create_subscription(FaceMeshArray, "faces/mesh", lambda m: got.append(1), RESULT_QOS)
    def on_diag(msg):
        for st in msg.status:
            if st.name.endswith("landmark_node"):
                diag.update({kv.key: kv.value for kv in st.values})
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, RESULT_QOS)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    def image(pixels):
        m = Image()
        m.height, m.width = pixels.shape[:2]
        m.encoding, m.step, m.data = "rgb8", pixels.shape[1] * 3, pixels.tobytes()
        return m
    msgs = {"small": image(small), "big": image(big)}
    def send(m, seconds, rate):
        start, k = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            t = time.time_ns()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(t, 1_000_000_000)
            pub.publish(m)
            k += 1
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
    end = time.monotonic() + 90
    while not got and time.monotonic() < end:
        send(msgs["small"], 1.0, 5.0)
    out = {"answered": bool(got)}
    if got:
        send(msgs["small"], 8.0, 5.0)
        out["before"] = rss()
        for _ in range(2):
            send(msgs["big"], 3.0, 120.0)
            out["peak"] = rss()
            send(msgs["small"], 10.0, 5.0)
        send(msgs["small"], 15.0, 5.0)
        out["after_bursts"] = rss()
        send(image(np.full((8000, 8000, 3), 120, np.uint8)), 0.05, 10.0)  # 192 MB: more than a 16 MiB segment
        send(msgs["small"], 15.0, 5.0)
        out["after"] = rss()
        out["trims"] = float(diag.get("memory_trims_total", "0"))
    print(json.dumps(out), flush=True)
    executor.shutdown(timeout_sec=2.0)
    spinner.join(2.0)
    node.destroy_node()
    rclpy.try_shutdown()
""")


def test_memory_returns_after_overload_bursts(tmp_path):
    """The landmark node in its own process: two 3 s bursts of 1080p at 120 Hz, then a
    quiet camera at 5 Hz, then one 8000x8000 frame (192 MB, more than the transport
    carries). Its resident memory comes back near its level before the bursts (it once
    stayed +136 MB after one burst and grew with every next one; the big frame left
    +185 MB for good). The camera is a process of its own too, with the package's
    profile (participants this test process made earlier may not have it)."""
    import json

    log = open(tmp_path / "landmark.log", "w")
    node = subprocess.Popen([sys.executable, "-m", "emotion_perception.nodes.landmark_node", "--ros-args",
                             "-p", "max_faces:=1"], env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        r = subprocess.run([sys.executable, "-c", MEMORY_CAMERA, str(FACE_PHOTO), str(node.pid)],
                           env=dict(os.environ), capture_output=True, text=True, timeout=300)
    finally:
        node.send_signal(2)
        node.wait(timeout=30)
        log.close()
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["answered"], "the landmark node process never answered"
    print(f"landmark node RSS: {m['before']:.0f} MB before, {m['peak']:.0f} MB at the end of the 2nd burst, "
          f"{m['after_bursts']:.0f} MB 25 s after, {m['after']:.0f} MB 15 s after an 8000x8000 frame; "
          f"{m['trims']:g} trims")
    assert m["trims"] >= 1, "memory was never trimmed after the bursts"
    assert m["after"] <= m["before"] * MEMORY_AFTER_OVERLOAD, \
        f"resident memory {m['after']:.0f} MB after the bursts, {m['before']:.0f} MB before " \
        f"({m['after'] / m['before'] - 1:+.0%})"


SLOW_CONSUMER = textwrap.dedent("""
    import sys, time, rclpy
    from rclpy.node import Node
    from emotion_perception import transport
    from emotion_perception.nodes.qos import RESULT_QOS
    from emotion_perception_msgs.msg import FaceMeshArray
    transport.configure_process()
    rclpy.init()
    node = Node("slow_consumer")
    got = []
    node.create_subscription(FaceMeshArray, "faces/mesh", lambda m: (got.append(1), time.sleep(0.3)), RESULT_QOS)
    end = time.monotonic() + float(sys.argv[1])
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    except BaseException:  # SIGINT from the test: report and leave
        pass
    print(len(got), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
""")


def _subscribers(node, topic: str = "faces/mesh") -> list[str]:
    """Node names of ``topic``'s subscribers, as the ROS graph shows them to ``node``."""
    name = node.resolve_topic_name(topic)
    return [i.node_name for i in node.get_subscriptions_info_by_topic(name)]


def _matched(pub, node, name: str) -> bool:
    """``name`` subscribes to ``pub``'s topic and ``pub`` matched every subscriber there."""
    subs = _subscribers(node, pub.topic_name)
    return name in subs and pub.get_subscription_count() >= len(subs)


def _serve_at_15hz(probe, rgb, stamp: int, n: int) -> tuple[list[float], int]:
    """Publish ``n`` frames at 15 Hz, each once; latency (s) of those served within 2 s, and the last stamp."""
    lat = []
    for _ in range(n):
        stamp += 66_000_000
        t = probe.publish(rgb, stamp)
        r = probe.wait("faces/mesh", stamp, 2.0)
        if r is not None:
            lat.append(r[1] - t)
        time.sleep(max(0.0, 1 / 15 - (time.monotonic() - t)))
    return lat, stamp


def _ms(lat) -> str:
    return f"median {np.median(lat) * 1e3:.1f} ms, p95 {np.percentile(lat, 95) * 1e3:.1f} ms, max {max(lat) * 1e3:.1f} ms"


def test_images_are_taken_while_the_other_nodes_are_busy(face_rgb):
    """In a pipeline of several nodes the landmark node spins on an executor thread of
    its own: while the other nodes' thread is held by a long callback, camera images are
    still taken and go through MediaPipe, and what they feed the other nodes follows
    once that thread is free. With one thread for all, nothing was taken meanwhile."""
    with Pipeline(["landmark", "frame"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        assert p.front_executor is not None
        probe = Probe(p, ["emotion/frame"])
        assert probe.send_until_served(face_rgb, 1_000_000_000, topic="emotion/frame") is not None
        diag = p.nodes["landmark"]._diag
        gate, held = threading.Event(), threading.Event()

        def hold():
            held.set()
            gate.wait(10.0)

        p.executor.call_soon(hold)
        try:
            assert held.wait(5.0), "the other nodes' executor never ran the holding callback (test broken)"
            before = diag.processed
            stamps = [2_000_000_000 + k * 66_000_000 for k in range(5)]
            for s in stamps:
                probe.publish(face_rgb, s)
                time.sleep(0.066)
            deadline = time.monotonic() + 5.0
            while diag.processed < before + 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            processed = diag.processed - before
            answered = [s for s in stamps if s in probe.got["emotion/frame"]]
        finally:
            gate.set()
        assert processed >= 4, f"only {processed} of 5 images went through MediaPipe while the other nodes were busy"
        assert answered == [], "emotion/frame answered while its executor was held (test broken)"
        assert sum(probe.wait("emotion/frame", s, 5.0) is not None for s in stamps) >= 4


def test_slow_consumer_does_not_slow_the_pipeline(face_rgb):
    """A subscriber node in its own process (a behaviour tree, a recorder on a slow
    disk) that takes 300 ms per message, with the same reliable QoS: the landmark node
    keeps its pace for everyone else, every frame is served within a second while it
    is attached, and frames are served at once when it is gone.

    "Its pace" is measured in the same run, just before the slow consumer attaches, so
    a slower or busier machine moves both: being held to the consumer's pace would put
    the median near 300 ms. A CI run once failed with a 150 ms median: in about one run
    in five the in-process runner's MultiThreadedExecutor then spun a whole core on
    empty wake-ups, stalling every thread of the process for 0.1-1.4 s; the runner now
    uses one executor thread (no stall in 10 runs of this test since, max 12 ms)."""
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 1}}) as p:
        probe = Probe(p, ["faces/mesh"])
        mesh_pub = p.nodes["landmark"]._mesh_pub
        base, stamp = _serve_at_15hz(probe, face_rgb, 1_000_000_000, 30)
        # Served counts and the median are this run's figures, printed; what is asserted is
        # what tells a node held to the consumer's pace (one message per 0.3 s) from one that
        # is not, on a quiet machine or beside other CPU-bound work (two busy loops: 29-30 of
        # 30 and 45 of 45 served, median 20-40 ms).
        assert len(base) >= 10, f"only {len(base)} of 30 frames served before the slow consumer came (test broken)"
        slow = subprocess.Popen([sys.executable, "-c", SLOW_CONSUMER, "30"], env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Matched when its node is among faces/mesh's subscribers and the publisher
            # matched every one of them (a count alone once stayed level: a subscriber
            # of an earlier test left just as it came).
            deadline = time.monotonic() + 20.0
            while not _matched(mesh_pub, p.nodes["landmark"], "slow_consumer") \
                    and time.monotonic() < deadline and slow.poll() is None:
                time.sleep(0.1)
            assert slow.poll() is None, f"the slow consumer exited (test broken): {slow.communicate()[1][-1000:]}"
            assert _matched(mesh_pub, p.nodes["landmark"], "slow_consumer"), \
                "the slow consumer never matched (test broken); faces/mesh subscribers: " \
                f"{_subscribers(p.nodes['landmark'])}, {mesh_pub.get_subscription_count()} matched"
            time.sleep(0.5)
            lat, stamp = _serve_at_15hz(probe, face_rgb, stamp, 45)  # 3 s
        finally:
            slow.send_signal(2)
            out, err = slow.communicate(timeout=30)
        assert len(lat) >= 23, f"only {len(lat)} of 45 frames served with a slow consumer attached"
        slow_got = int(out.split()[-1]) if out.split() else 0
        assert 0 < slow_got < 45, f"the slow consumer took {slow_got} messages (test broken): {err[-500:]}"
        report = (f"before it: {_ms(base)}; with a slow consumer: {_ms(lat)}; it took {slow_got} messages; "
                  f"load average {os.getloadavg()[0]:.1f}; /dev/shm free {shutil.disk_usage('/dev/shm').free / 2**20:.0f} MB; "
                  f"latencies (ms) {[round(x * 1e3) for x in lat]}")
        print(report)
        # held to the consumer's pace, the median would be near its 0.3 s per message
        assert np.median(lat) < 0.15, f"the slow consumer slowed the node: median {np.median(lat):.3f} s: {report}"
        assert max(lat) < RECOVERY_S, f"a frame took {max(lat):.2f} s with a slow consumer attached: {report}"
        stamp += 66_000_000
        t = probe.publish(face_rgb, stamp)
        r = probe.send_until_served(face_rgb, stamp, timeout=RECOVERY_S)
        assert r is not None and r[1] - t < RECOVERY_S


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_overload_1080p_at_120hz_drops_instead_of_queueing():
    """Overload for 4 s (1080p with four faces at 120 Hz): frames are dropped, not queued (the node ends on one of the
    newest frames and has no backlog once the input stops), the drops are counted in
    /diagnostics, and memory does not grow with time.

    Judged by counts and by the backlog at the end rather than by absolute latency,
    so a machine loaded by other work cannot fail it while a real queue still would
    (a queue of the ~100 frames dropped here would take seconds to drain)."""
    # Four faces (max_faces 4): about 27 ms per 1080p frame here, so 120 Hz is a 3-4x
    # overload on any machine this runs on. With one face MediaPipe does ~110 fps at
    # 1080p, and a fast moment could let the node keep up and void the test.
    rgb = cv2.resize(read_rgb(FACE_PHOTO), (500, 500))
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    for y, x in ((20, 100), (20, 1300), (560, 100), (560, 1300)):
        frame[y:y + 500, x:x + 500] = rgb
    with Pipeline(["landmark"], parameter_overrides={"landmark": {"max_faces": 4}}) as p:
        probe = Probe(p, ["faces/mesh"])
        assert probe.send_until_served(frame, 1_000_000_000, timeout=15.0) is not None
        msg = image_msg(frame, 0)
        sent_at = {}
        rss = []
        stamp = 2_000_000_000
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 4.0:
            stamp += 8_333_333
            sent_at[stamp] = probe.publish_msg(msg, stamp)
            n += 1
            if len(rss) < (time.monotonic() - start) / 0.5:
                rss.append(_rss_mb())
            time.sleep(max(0.0, start + n / 120 - time.monotonic()))
        stopped = time.monotonic()
        time.sleep(3.0)
        with probe.cond:
            served = {s: v[1] for s, v in probe.got["faces/mesh"].items() if s in sent_at}
        order = [round((served[s] - sent_at[s]) * 1e3) for s in sorted(served)]
        print(f"overload: sent {n} frames in 4 s, served {len(served)}, latency in stamp order (ms): {order}")
        assert len(served) >= 2, f"only {len(served)} frames served under overload"
        dropped = probe.wait_diag("landmark_node", "dropped_total", 1)
        processed = probe.wait_diag("landmark_node", "processed_total", len(served) + 1)
        assert dropped > 0, "drops not counted in /diagnostics"
        assert processed < 0.8 * n, f"{processed:.0f} of {n} frames processed: is it really overloaded?"
        # no backlog: the last result is for one of the newest frames and comes soon after the input stops
        last = max(served)
        newest = sorted(sent_at)[-max(10, n // 10):]
        assert last in newest, "the node ended on an old frame: frames are queued, not dropped"
        assert served[last] - stopped < 2.5, f"results kept coming {served[last] - stopped:.1f} s after the input stopped"
        assert rss[-1] - rss[1] < 150, f"memory grew {rss[-1] - rss[1]:.0f} MB in 3 s of overload: {rss}"
