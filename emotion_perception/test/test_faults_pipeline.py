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
import time

import cv2
import numpy as np
import pytest

from emotion_perception.runner import Pipeline

from conftest import DATA, own_ros_domain_fixture, read_rgb
from pipeline_probe import DOWNSTREAM, NODE_OUTPUT, Probe, constructible_nodes, image_msg

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
    cap = cv2.VideoCapture(str(DATA / "video" / name))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = []
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append((int(i * 1e9 / fps), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        i += 1
    cap.release()
    assert out, name
    return out


def _ids(mesh_msg) -> list[str]:
    return [f.face_id for f in mesh_msg.faces]


@pytest.mark.parametrize("video,face_at_start", [("face_noface.mov", True), ("noface_face.mov", False)])
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
        # (MediaPipe loses the face in the very last frame of noface_face.mov)
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


SLOW_CONSUMER = textwrap.dedent("""
    import sys, time, rclpy
    from rclpy.node import Node
    from emotion_perception import transport
    from emotion_perception.nodes.common import RESULT_QOS
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
        subscribers = mesh_pub.get_subscription_count()
        base, stamp = _serve_at_15hz(probe, face_rgb, 1_000_000_000, 30)
        assert len(base) >= 29, f"only {len(base)} of 30 frames served before the slow consumer came"
        slow = subprocess.Popen([sys.executable, "-c", SLOW_CONSUMER, "30"], env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20.0
            while mesh_pub.get_subscription_count() <= subscribers and time.monotonic() < deadline:
                time.sleep(0.1)
            assert mesh_pub.get_subscription_count() > subscribers, "the slow consumer never matched (test broken)"
            time.sleep(0.5)
            lat, stamp = _serve_at_15hz(probe, face_rgb, stamp, 45)  # 3 s
        finally:
            slow.send_signal(2)
            out, err = slow.communicate(timeout=30)
        assert len(lat) >= 43, f"only {len(lat)} of 45 frames served with a slow consumer attached"
        slow_got = int(out.split()[-1]) if out.split() else 0
        assert 0 < slow_got < 45, f"the slow consumer took {slow_got} messages (test broken): {err[-500:]}"
        report = (f"before it: {_ms(base)}; with a slow consumer: {_ms(lat)}; it took {slow_got} messages; "
                  f"load average {os.getloadavg()[0]:.1f}; /dev/shm free {shutil.disk_usage('/dev/shm').free / 2**20:.0f} MB; "
                  f"latencies (ms) {[round(x * 1e3) for x in lat]}")
        print(report)
        assert np.median(lat) < 0.05, f"median latency {np.median(lat):.3f} s with a slow consumer attached: {report}"
        assert np.median(lat) < 2 * np.median(base) + 0.02, f"the slow consumer slowed the node: {report}"
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
