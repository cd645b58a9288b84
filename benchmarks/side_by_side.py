"""Two (or more) pipelines side by side on one camera stream, each in a namespace of
its own: the CPU per frame of every process and the frames answered at ``emotion``.

On a shared machine whose speed changes by the minute, runs taken one after the other
compare the hour as much as the code; pipelines fed the same frames at the same time
share the same machine. A variant is ``<code>-<layout>``: code ``new`` (this checkout)
or ``old`` (the ``emotion_perception`` package of ``--old-tree``, for example a
``git archive`` of an earlier commit; the messages must be compatible), layout ``sep``
(one process per node) or ``one`` (``emotion-perception pipeline``). Only ``emotion``
is listened to, as a behaviour tree would.

    git archive <commit> emotion_perception | tar -x -C /tmp/old
    .venv/bin/python benchmarks/side_by_side.py --variants old-sep,new-sep --old-tree /tmp/old/emotion_perception
    .venv/bin/python benchmarks/side_by_side.py --variants new-sep,new-one [--rate 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import PKG, VENV_PY, Table, compose_frames, isolate_domain, proc_cpu_s
from procs import NODES, Camera, stamp_of

SIX = ("transformer", "lstm", "frame", "image_emotion", "emotion_fusion", "attention")


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="new-sep,new-one", help="comma-separated <old|new>-<sep|one>")
    ap.add_argument("--old-tree", help="directory holding the old emotion_perception package (for old-*)")
    ap.add_argument("--rate", type=float, default=20.0, help="camera rate, Hz (all variants share the cores)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--name", default="side_by_side", help="results file name (benchmarks/results/<name>.md)")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    import yaml

    variants = a.variants.split(",")
    if any(v.startswith("old-") for v in variants) and not a.old_tree:
        ap.error("old-* variants need --old-tree")
    isolate_domain()
    frames = compose_frames(640, 480, 1, 90, a.data)
    tree = yaml.safe_load((PKG / "config" / "params.yaml").read_text())
    procs: dict[tuple[str, str], subprocess.Popen] = {}
    files = []
    try:
        for v in variants:
            code, layout = v.split("-")
            ns = v.replace("-", "_")
            env = dict(os.environ, PYTHONPATH=a.old_tree if code == "old" else "")
            params = {f"/{ns}/{k}": val for k, val in tree.items()}  # keyed by the namespaced node names
            params[f"/{ns}/landmark_node"]["ros__parameters"]["max_faces"] = 1
            f = tempfile.NamedTemporaryFile("w", suffix=".yaml")
            yaml.safe_dump(params, f)
            f.flush()
            files.append(f)
            if layout == "sep":
                for n, (module, _, _) in NODES.items():
                    cmd = [str(VENV_PY), "-m", f"emotion_perception.nodes.{module}", "--ros-args", "--params-file",
                           f.name, "-r", f"__ns:=/{ns}", "-r", "image:=/image"]
                    procs[(v, n)] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL)
            else:
                cmd = [str(VENV_PY), "-m", "emotion_perception.cli", "pipeline", "--params-file", f.name,
                       "--namespace", ns, "--image-topic", "/image"]
                procs[(v, "pipeline")] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL)
        time.sleep(10.0)
        from emotion_perception_msgs.msg import EmotionArray

        from emotion_perception.nodes.qos import RESULT_QOS

        cam = Camera([])
        got: dict[str, set] = {v: set() for v in variants}
        for v in variants:
            cam.node.create_subscription(EmotionArray, f"/{v.replace('-', '_')}/emotion",
                                         lambda m, v=v: got[v].add(stamp_of(m)), RESULT_QOS)
        try:
            cam.prepare(frames)
            cam.stream(5.0, 6.0, start_index=0)  # discovery, warm-up
            time.sleep(2.0)
            cpu0 = {k: proc_cpu_s(p.pid) for k, p in procs.items()}
            sent = cam.stream(a.rate, a.seconds, start_index=1000)
            cpu1 = {k: proc_cpu_s(p.pid) for k, p in procs.items()}
            time.sleep(2.0)
        finally:
            cam.close()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(2)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    ms = {k: 1e3 * (cpu1[k] - cpu0[k]) / len(sent) for k in procs}
    cols = ["variant", "whole pipeline CPU ms per frame", "six nodes around MediaPipe", *NODES,
            "emotion answered / sent"]
    t = Table(a.name, f"Pipelines side by side on one camera stream, {a.rate:g} Hz for {a.seconds:g} s, "
                              "CPU ms per frame of each process", cols)
    for v in variants:
        per = {n: ms[(v, n)] for (vv, n) in procs if vv == v}
        total = sum(per.values())
        six = sum(per.get(n, 0.0) for n in SIX) if "pipeline" not in per else "-"
        t.add(v, total, six, *(per.get(n, "-") if "pipeline" not in per else "-" for n in NODES),
              f"{len(got[v] & set(sent))} / {len(sent)}")
        t.data[v] = {"ms_per_frame": per, "total": total, "answered": len(got[v] & set(sent)), "sent": len(sent)}
    t.notes.append("Every variant gets the same frames at the same time; only emotion is listened to. "
                   "old = " + (a.old_tree or "-") + ".")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
