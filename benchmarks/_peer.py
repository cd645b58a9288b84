"""One side of the transport benchmark, run as its own process so that the transport
environment (``FASTDDS_BUILTIN_TRANSPORTS`` / ``FASTDDS_DEFAULT_PROFILES_FILE``) is
exactly what the parent chose, untouched by the package's own default.

    _peer.py sub --seconds 10 [--compressed]   -> prints one JSON line at the end
    _peer.py pub --seconds 10 --rate 30 [--compressed] [--width 640 --height 480]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("pub", "sub"))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--compressed", action="store_true")
    ap.add_argument("--topic", default="bench_image")
    ap.add_argument("--discovery-timeout", type=float, default=10.0)
    a = ap.parse_args()

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init()
    node = Node(f"transport_{a.role}")
    kind = CompressedImage if a.compressed else Image
    topic = a.topic + ("/compressed" if a.compressed else "")
    if a.role == "sub":
        lat_ms: list[float] = []
        seqs: set[int] = set()

        def cb(msg):
            now = time.time_ns()
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            lat_ms.append((now - stamp) / 1e6)
            seqs.add(int(msg.header.frame_id))

        node.create_subscription(kind, topic, cb, qos_profile_sensor_data)
        print("ready", flush=True)
        end = time.monotonic() + a.seconds + a.discovery_timeout + 120.0  # the parent says stop
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
            if sys.stdin in _readable():
                break
        print(json.dumps({"received": len(seqs), "latency_ms": lat_ms}), flush=True)
    else:
        import cv2

        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
        from common import compose_frames

        frames = compose_frames(a.width, a.height, 1, 30)
        pub = node.create_publisher(kind, topic, qos_profile_sensor_data)
        t0 = time.monotonic()
        while pub.get_subscription_count() < 1 and time.monotonic() - t0 < a.discovery_timeout:
            rclpy.spin_once(node, timeout_sec=0.05)
        discovery_s = time.monotonic() - t0
        time.sleep(0.5)  # let the matched reader finish setting up its transport
        n = int(a.seconds * a.rate)
        period = 1.0 / a.rate
        start = time.monotonic()
        for i in range(n):
            f = frames[i % len(frames)]
            msg = kind()
            msg.header.frame_id = str(i)
            if a.compressed:
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                msg.format = "rgb8; jpeg compressed bgr8"
                msg.data = buf.tobytes()
            else:
                msg.height, msg.width = f.shape[:2]
                msg.encoding = "rgb8"
                msg.step = f.shape[1] * 3
                msg.data = f.tobytes()
            t = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
            pub.publish(msg)
            delay = start + (i + 1) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(1.0)  # let the last frames through before the publisher goes away
        print(json.dumps({"sent": n, "discovery_s": discovery_s,
                          "matched": pub.get_subscription_count()}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _readable():
    import select

    try:
        r, _, _ = select.select([sys.stdin], [], [], 0)
    except (ValueError, OSError):
        return []
    if r and not sys.stdin.readline():  # EOF is not a stop request
        return []
    return r


if __name__ == "__main__":
    sys.exit(main())
