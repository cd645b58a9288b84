"""Run every benchmark (``make bench``): each in its own process, one after the other,
each printing its table and writing it to ``benchmarks/results/<name>.md`` and
``.json``. Defaults finish in about 25 minutes on a 2-core machine; ``--quick`` in
about 10. The long soak (10 minutes) is run separately:
``.venv/bin/python benchmarks/soak.py --minutes 10``.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only latency,transport]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
PY = sys.executable

#: name -> (default arguments, --quick arguments); in running order.
BENCHMARKS = {
    "transport": (["--seconds", "10"], ["--quick"]),
    "startup": (["--starts", "10"], ["--quick"]),
    "landmark_node": (["--frames", "80"], ["--quick"]),
    "classifiers": (["--frames", "300"], ["--quick"]),
    "image_cnn": (["--frames", "200"], ["--quick"]),
    "max_faces": (["--frames", "600"], ["--quick"]),
    "worker_order": (["--frames", "300"], ["--quick"]),
    "hri": (["--frames", "150"], ["--quick"]),
    "profile": (["--final-only", "--seconds", "20"], ["--final-only", "--seconds", "10"]),
    "profile_in_process": (["--in-process", "--final-only", "--seconds", "20"],
                           ["--in-process", "--final-only", "--seconds", "10"]),
    # both layouts as a behaviour tree uses them: listening to emotion and attention only
    # (the weight-0 members then sleep: nodes/lazy.py); bare MediaPipe in each run
    "latency": (["--final-only", "--seconds", "60"], ["--final-only", "--quick"]),
    "latency_in_process": (["--in-process", "--final-only", "--seconds", "60"],
                           ["--in-process", "--final-only", "--quick"]),
    # the same with the REP-155 producer and a libhri-like listener (issue 23's expression
    # latency); its own tables: hri_node's CPU would change the whole pipeline's above
    "latency_hri": (["--final-only", "--hri", "--seconds", "30"], ["--final-only", "--hri", "--quick"]),
    "latency_hri_in_process": (["--in-process", "--final-only", "--hri", "--seconds", "30"],
                               ["--in-process", "--final-only", "--hri", "--quick"]),
    # issue 23's targets name two faces too (side by side in 640x480)
    "latency_hri_2faces": (["--final-only", "--hri", "--faces", "2", "--seconds", "30"],
                           ["--final-only", "--hri", "--faces", "2", "--quick"]),
    "latency_hri_in_process_2faces": (["--in-process", "--final-only", "--hri", "--faces", "2", "--seconds", "30"],
                                      ["--in-process", "--final-only", "--hri", "--faces", "2", "--quick"]),
    "throughput": (["--seconds-per-rate", "8"], ["--quick"]),
    "throughput_in_process": (["--in-process", "--final-only", "--seconds-per-rate", "8"],
                              ["--in-process", "--final-only", "--quick"]),
    "overload": (["--seconds", "45"], ["--quick"]),
    "soak": (["--minutes", "2"], ["--minutes", "0.5"]),
    "lazy_wake": (["--seconds", "10", "--wakes", "5"], ["--quick"]),
}
#: Benchmarks run by another's script (name -> script), with their own arguments.
SCRIPTS = {"hri": "hri_bench",
           "throughput_in_process": "throughput", "latency_in_process": "latency", "latency_hri": "latency",
           "latency_hri_in_process": "latency", "latency_hri_2faces": "latency",
           "latency_hri_in_process_2faces": "latency", "profile": "profile_nodes",
           "profile_in_process": "profile_nodes"}
#: Longest any one benchmark may take, s.
TIMEOUT_S = 600


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs of everything (about 10 minutes)")
    ap.add_argument("--only", help="comma-separated benchmark names: " + ", ".join(BENCHMARKS))
    ap.add_argument("--data", help="shared data directory (default ../shared/data)")
    a = ap.parse_args(argv)
    names = list(BENCHMARKS)
    if a.only:
        names = [n.strip() for n in a.only.split(",")]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            ap.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    env = dict(os.environ)
    if a.data:
        env["EMOTION_PERCEPTION_DATA"] = a.data
    status = {}
    start = time.monotonic()
    for i, name in enumerate(names):
        args = BENCHMARKS[name][1 if a.quick else 0]
        # each benchmark on its own DDS domain: a late node of one cannot talk to the next
        env["ROS_DOMAIN_ID"] = str(110 + (os.getpid() + i) % 90)
        print(f"\n=== {name} {' '.join(args)} ===", flush=True)
        t0 = time.monotonic()
        try:
            script = HERE / f"{SCRIPTS.get(name, name)}.py"
            r = subprocess.run([PY, str(script), *args], env=env, timeout=TIMEOUT_S)
            status[name] = ("ok" if r.returncode == 0 else f"failed (exit {r.returncode})", time.monotonic() - t0)
        except subprocess.TimeoutExpired:
            status[name] = (f"timed out after {TIMEOUT_S} s", time.monotonic() - t0)
    print(f"\n=== done in {(time.monotonic() - start) / 60:.1f} min ===")
    for name, (st, secs) in status.items():
        print(f"  {name:14s} {st:28s} {secs:6.0f} s   benchmarks/results/{name}.md")
    return 0 if all(s == "ok" for s, _ in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
