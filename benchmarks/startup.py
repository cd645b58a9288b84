"""Start-up of the whole pipeline, every node in its own process, with each Fast DDS
transport configuration: in how many of N starts every output topic reached a
listener (the camera process) within 30 s of the camera's first frame, and how long
that took.

A start counts as failed when a topic stays silent for 30 s although the process of the
node behind it runs: an endpoint pair that discovery never matched (in most failures
seen, the fusion node still published, so the silent node's output did reach it). Bare MediaPipe's first result (graph start and first frame)
is the reference time.

    .venv/bin/python benchmarks/startup.py [--starts 10] [--only shm]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from common import BareMediaPipe, Table, compose_frames, isolate_domain, summary
from procs import NODES, TRANSPORT_VARS, Camera, NodeProcesses

#: name -> environment of every process (camera and nodes); {} = the package default.
CONFIGS = {
    "XML profile config/fastdds_shm.xml (package default)": {},
    "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
}
TIMEOUT_S = 30.0


def one_start(env: dict, frames) -> None:
    """One start in this process: prints its result as a JSON line as soon as it is
    known (before shutting down, which can hang: see ``run_start``)."""
    for k in TRANSPORT_VARS:
        os.environ.pop(k, None)
    os.environ.update(env)  # the camera (this process) uses what the nodes use
    with NodeProcesses(landmark_params={"max_faces": 1},
                       transport=env.get("FASTDDS_BUILTIN_TRANSPORTS")) as procs:
        topics = [NODES[n][1] for n in procs.running()]
        cam = Camera(topics)
        try:
            cam.prepare(frames)
            t0 = time.monotonic()
            ok = cam.wait_first(topics, timeout_s=TIMEOUT_S)
            took = time.monotonic() - t0
            silent = [t for t in topics if not cam.got[t]]
            print(json.dumps({"ok": ok, "seconds": took, "silent": silent}), flush=True)
        finally:
            cam.close()
    print(json.dumps({"closed": True}), flush=True)


def run_start(name: str) -> dict:
    """One start in a fresh process and session (Fast DDS reads transport settings
    once per process). A start whose shutdown hangs (seen with LARGE_DATA: the
    camera's executor never returns) is killed with its nodes and counted."""
    p = subprocess.Popen([sys.executable, __file__, "--child", name], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=TIMEOUT_S + 60)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        hung = True
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    result = next((ln for ln in lines if "ok" in ln), {"ok": False, "seconds": float("nan"), "silent": ["?"]})
    result["shutdown_hung"] = hung or not any(ln.get("closed") for ln in lines)
    return result


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=10, help="starts per configuration")
    ap.add_argument("--quick", action="store_true", help="3 starts per configuration")
    ap.add_argument("--only", help="run only the configurations whose name contains this text")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        isolate_domain()
        one_start(CONFIGS[a.child], compose_frames(640, 480, 1, 30, None))
        return None
    starts = 3 if a.quick else a.starts
    isolate_domain()  # children inherit this domain
    frames = compose_frames(640, 480, 1, 30, None)
    t0 = time.monotonic()
    with BareMediaPipe(1) as mp_:
        mp_.detect(frames[0])
    bare_s = time.monotonic() - t0
    t = Table("startup", f"Pipeline start-up, every node in its own process, {starts} starts per configuration",
              ["configuration", "starts with every topic answering", "time to all answering p50 s",
               "max s", "topics silent for 30 s", "shutdowns that hung"])
    for name in CONFIGS:
        if a.only and a.only.lower() not in name.lower():
            continue
        results = []
        for k in range(starts):
            r = run_start(name)
            print(f"  {name} start {k + 1}: {'ok' if r['ok'] else 'FAILED'} in {r['seconds']:.1f} s, "
                  f"silent {r['silent']}{', shutdown hung' if r['shutdown_hung'] else ''}", file=sys.stderr,
                  flush=True)
            results.append(r)
        good = [r["seconds"] for r in results if r["ok"]]
        silent = sorted({s for r in results for s in r["silent"]})
        t.add(name, f"{len(good)} / {starts}", summary(good)["p50"] if good else float("nan"),
              max(good) if good else float("nan"), ", ".join(silent) or "-",
              sum(r["shutdown_hung"] for r in results))
        t.data[name] = results
    t.data["bare_mediapipe_first_result_s"] = bare_s
    t.notes.append(f"Bare MediaPipe: graph created and first frame answered in {bare_s:.2f} s in this process.")
    t.notes.append("Time counts from the camera's first frame (published at 5 Hz until every topic answered); "
                   "nodes were started 4 s before it. Each start runs in a fresh process (Fast DDS reads "
                   "transport settings once per process).")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
