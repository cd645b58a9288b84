"""Camera-sized images between two processes: frames received of those sent with each
Fast DDS transport configuration, and the transfer latency next to what bare MediaPipe
spends on the same frame.

640x480 rgb8 (921,600 bytes) at 30 Hz, sensor-data QoS (best effort), publisher and
subscriber each in their own process with the environment under test. The publisher
waits until it has matched the subscriber, so the figure is steady-state loss, not
discovery.

    .venv/bin/python benchmarks/transport.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import PKG, VENV_PY, Table, bare_max_fps, compose_frames, isolate_domain, ratio, summary
from procs import TRANSPORT_VARS

from emotion_perception.transport import QOS_FROM_XML_ENV

PROFILE = PKG / "config" / "fastdds_shm.xml"
LARGE_DATA_PROFILE = PKG / "config" / "fastdds_large_data.xml"
#: name -> (environment changes, compressed?)
CONFIGS = {
    "default transports (unset)": ({}, False),
    "UDPv4": ({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}, False),
    "SHM": ({"FASTDDS_BUILTIN_TRANSPORTS": "SHM"}, False),
    "LARGE_DATA": ({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, False),
    "XML profile config/fastdds_large_data.xml": ({"FASTDDS_DEFAULT_PROFILES_FILE": str(LARGE_DATA_PROFILE)}, False),
    "XML profile config/fastdds_shm.xml (package default)": ({"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE),
                                                              QOS_FROM_XML_ENV: "1"}, False),
    "config/fastdds_shm.xml without RMW_FASTRTPS_USE_QOS_FROM_XML (buffers kept)": (
        {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)}, False),
    "CompressedImage (JPEG q90), default transports": ({}, True),
}


def run_pair(env_changes: dict, compressed: bool, seconds: float, rate: float = 30.0) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_VARS}
    env.update(env_changes)
    peer = [str(VENV_PY), os.path.join(os.path.dirname(__file__), "_peer.py")]
    extra = ["--seconds", str(seconds), "--rate", str(rate)] + (["--compressed"] if compressed else [])
    sub = subprocess.Popen(peer + ["sub"] + extra, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        pub = subprocess.run(peer + ["pub"] + extra, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=seconds + 60)
        p = json.loads(pub.stdout.strip().splitlines()[-1])
        try:
            sub.stdin.write("stop\n")
            sub.stdin.flush()
        except BrokenPipeError:
            pass
        out, _ = sub.communicate(timeout=30)
        s = json.loads(out.strip().splitlines()[-1])
    finally:
        if sub.poll() is None:
            sub.kill()
    return {"sent": p["sent"], "received": s["received"], "discovery_s": p["discovery_s"],
            "latency": summary(s["latency_ms"])}


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of 30 Hz images per configuration")
    ap.add_argument("--quick", action="store_true", help="3 s per configuration")
    ap.add_argument("--only", help="run only the configurations whose name contains this text")
    a = ap.parse_args(argv)
    seconds = 3.0 if a.quick else a.seconds
    isolate_domain()
    fps, times = bare_max_fps(compose_frames(640, 480, 1, 60))
    bare = summary(times)
    t = Table("transport", f"640x480 rgb8 at 30 Hz between two processes, {seconds:g} s per configuration",
              ["configuration", "received / sent", "lost %", "transfer p50 ms", "transfer p95 ms",
               "p50 / bare MediaPipe p50"])
    for name, (env, compressed) in CONFIGS.items():
        if a.only and a.only.lower() not in name.lower():
            continue
        t0 = time.monotonic()
        r = run_pair(env, compressed, seconds)
        print(f"  {name}: {r['received']}/{r['sent']} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        lost = 100.0 * (1 - r["received"] / r["sent"])
        t.add(name, f"{r['received']} / {r['sent']}", lost, r["latency"]["p50"], r["latency"]["p95"],
              ratio(r["latency"]["p50"], bare["p50"]))
        t.data[name] = r
        time.sleep(0.5)
    t.data["bare_mediapipe_ms"] = bare
    t.notes.append(f"Bare MediaPipe on the same frames: p50 {bare['p50']:.1f} ms per frame "
                   f"({fps:.0f} frames/s); the last column is transfer time relative to it.")
    t.notes.append("Transfer = header stamp (set just before publish) to the subscriber's callback.")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
