"""A lazy classifier node (nodes/lazy.py) in its own process, as ``ros2 launch
one_process:=false`` runs it: its CPU per input array while nobody listens to its
output (idle: it is not subscribed, so it takes nothing), how long a new subscriber
(what ``ros2 topic echo emotion/lstm`` does) waits for its first output, and its CPU per
array while active, for comparison. Bare MediaPipe's CPU per image on the same camera
frames, in the same run, is the reference the targets are stated against.

This process plays the landmark node: it publishes real blendshape arrays (one face) on
``faces/blendshapes`` at the camera rate, and it is the echo that comes and goes.

    .venv/bin/python benchmarks/lazy_wake.py [--seconds 10] [--wakes 5] [--rate 30] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from common import Table, compose_frames, isolate_domain, proc_cpu_s, ratio, summary
from procs import NodeProcesses, bare_latency_ms

#: Target: an idle node's CPU per camera image, ms (issue 22).
IDLE_TARGET_MS = 0.05
#: Target: a new subscriber's first output within this long, s.
WAKE_TARGET_S = 1.0


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="idle and active windows, s each")
    ap.add_argument("--wakes", type=int, default=5, help="echo subscriptions made and dropped")
    ap.add_argument("--rate", type=float, default=30.0, help="input arrays per second")
    ap.add_argument("--quick", action="store_true", help="5 s windows, 3 wakes")
    ap.add_argument("--node", default="lstm", choices=("lstm", "transformer", "frame", "attention"),
                    help="which lazy node (fed blendshapes; transformer and frame: meshes too)")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    seconds, wakes = (5.0, 3) if a.quick else (a.seconds, a.wakes)
    isolate_domain()

    import rclpy
    from rclpy.node import Node

    from emotion_perception import transport
    from emotion_perception.nodes.qos import RESULT_QOS
    from emotion_perception_msgs.msg import (AttentionArray, Blendshapes, BlendshapesArray, EmotionArray,
                                             FaceMesh, FaceMeshArray)

    frames = compose_frames(640, 480, 1, 90, a.data)
    transport.configure_process()
    rng = np.random.default_rng(0)
    out_topic = {"lstm": "emotion/lstm", "transformer": "emotion/transformer", "frame": "emotion/frame",
                 "attention": "attention"}[a.node]
    out_type = AttentionArray if a.node == "attention" else EmotionArray
    with NodeProcesses([a.node]) as procs:
        pid = procs.pids()[a.node]
        rclpy.init()
        node = Node("lazy_wake_bench")
        shapes_pub = node.create_publisher(BlendshapesArray, "faces/blendshapes", RESULT_QOS)
        mesh_pub = node.create_publisher(FaceMeshArray, "faces/mesh", RESULT_QOS)
        got: list[float] = []
        lock = threading.Lock()
        stop = threading.Event()
        sent = [0]

        def feed():
            period, t_next = 1.0 / a.rate, time.monotonic()
            lm = rng.random((478, 3)).astype(float) * 0.2 + 0.4
            while not stop.is_set():
                i = sent[0]
                h = node.get_clock().now().to_msg()
                b = BlendshapesArray()
                b.header.stamp, b.header.frame_id, b.image_seq = h, "camera", i + 1
                b.stream_time_ns = i * int(1e9 / a.rate) + 1
                b.faces.append(Blendshapes(header=b.header, face_id="face_1",
                                           scores=[float(v) for v in rng.random(52)]))
                m = FaceMeshArray()
                m.header, m.image_seq, m.stream_time_ns = b.header, b.image_seq, b.stream_time_ns
                f = FaceMesh(header=b.header, face_id="face_1", image_width=640, image_height=480, score=1.0)
                f.x, f.y, f.z = (lm[:, k].tolist() for k in range(3))
                m.faces.append(f)
                shapes_pub.publish(b)
                mesh_pub.publish(m)
                sent[0] += 1
                t_next += period
                time.sleep(max(0.0, t_next - time.monotonic()))

        spin = threading.Thread(target=lambda: _spin(node, stop), daemon=True)
        spin.start()
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        time.sleep(2.0)

        def cpu_per_array(window_s: float) -> float:
            c0, n0 = proc_cpu_s(pid), sent[0]
            time.sleep(window_s)
            return 1e3 * (proc_cpu_s(pid) - c0) / max(1, sent[0] - n0)

        idle_ms = cpu_per_array(seconds)
        idle_taken = shapes_pub.get_subscription_count() + mesh_pub.get_subscription_count()
        wake_s: list[float] = []
        sleep_s: list[float] = []
        active_ms = float("nan")
        for k in range(wakes):
            with lock:
                got.clear()
            t0 = time.monotonic()
            sub = node.create_subscription(out_type, out_topic,
                                           lambda _m: (lock.acquire(), got.append(time.monotonic()), lock.release()),
                                           RESULT_QOS)
            while time.monotonic() - t0 < 10.0:
                with lock:
                    if got:
                        break
                time.sleep(0.005)
            with lock:
                wake_s.append(got[0] - t0 if got else float("nan"))
            if k == 0:
                active_ms = cpu_per_array(seconds)
            node.destroy_subscription(sub)
            t1 = time.monotonic()
            while time.monotonic() - t1 < 10.0 and \
                    shapes_pub.get_subscription_count() + mesh_pub.get_subscription_count() > 0:
                time.sleep(0.01)
            sleep_s.append(time.monotonic() - t1)
        idle_after_ms = cpu_per_array(seconds)
        stop.set()
        feeder.join(2.0)
        node.destroy_node()
        rclpy.try_shutdown()
        spin.join(2.0)
    bare_cpu: dict = {}
    bare_latency_ms(frames, a.rate, min(seconds, 15.0), cpu=bare_cpu)
    bare_ms = bare_cpu["ms_per_frame"]

    w = summary([x for x in wake_s if x == x])
    t = Table("lazy_wake", f"A lazy node ({a.node}_node, its own process): CPU per input array idle and active, "
                           f"and a new subscriber's wait for its first output, {a.rate:g} arrays/s",
              ["measure", "value", "/ bare MediaPipe CPU per image", "target", "verdict"])
    t.add("idle: CPU ms per input array (nobody listens)", idle_ms, ratio(idle_ms, bare_ms),
          f"<= {IDLE_TARGET_MS} ms", "met" if idle_ms <= IDLE_TARGET_MS else "NOT met")
    t.add("idle again after the echoes: CPU ms per input array", idle_after_ms, ratio(idle_after_ms, bare_ms),
          f"<= {IDLE_TARGET_MS} ms", "met" if idle_after_ms <= IDLE_TARGET_MS else "NOT met")
    t.add("active: CPU ms per input array (one echo)", active_ms, ratio(active_ms, bare_ms), "-", "-")
    t.add(f"first output after an echo subscribes, s (p50 of {wakes})", w["p50"], "-", f"<= {WAKE_TARGET_S} s",
          "met" if max(wake_s) <= WAKE_TARGET_S else "NOT met")
    t.add(f"first output after an echo subscribes, s (max of {wakes})", max(wake_s), "-", f"<= {WAKE_TARGET_S} s",
          "met" if max(wake_s) <= WAKE_TARGET_S else "NOT met")
    t.add("unsubscribed after the echo left, s (max)", max(sleep_s), "-", "-", "-")
    t.add("bare MediaPipe CPU ms per image (this process, same rate)", bare_ms, 1.0, "-", "-")
    t.data = {"idle_ms": idle_ms, "idle_after_ms": idle_after_ms, "active_ms": active_ms, "wake_s": wake_s,
              "sleep_s": sleep_s, "bare_ms": bare_ms, "idle_input_readers": idle_taken, "node": a.node}
    t.notes.append(f"While idle the node had {idle_taken} reader(s) on its inputs (0: it takes nothing). Idle CPU "
                   "is its 1 Hz /diagnostics and the middleware's own threads, spread over the input arrays it does not take "
                   "(its outputs' matched events wake it: it polls nothing; a 0.5 s polling timer made it 0.07 ms).")
    t.done()
    return t


def _spin(node, stop) -> None:
    import rclpy

    while not stop.is_set() and rclpy.ok():
        try:
            rclpy.spin_once(node, timeout_sec=0.1)
        except Exception:  # noqa: BLE001 - shutting down
            return


if __name__ == "__main__":
    main(sys.argv[1:])
