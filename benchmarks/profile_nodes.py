"""Where each node's CPU goes per frame at 30 Hz: every node (or, with
``--in-process``, the one ``emotion-perception pipeline`` process) runs under
``_instrument.py``, which charges the thread CPU time of each part to it: executor
(wait set, wake-up), take (deserialise), timers, message -> arrays, the model,
arrays -> messages, publish (serialise, write), diagnostics, logging, pairing by
stamp, the callback's own Python; the process's threads (Python, MediaPipe's own,
Fast DDS's) come from /proc. This process is the camera (640x480 rgb8, one face).

With ``--py-spy`` each process is then also sampled by ``py-spy record`` (PyPI
``py-spy``, in requirements.txt) and its most frequent functions are listed. py-spy
counts a thread as busy while it is runnable, waiting for a core included, so on a
loaded machine its shares follow wake-ups more than CPU; the instrumented table is
the CPU account.

    .venv/bin/python benchmarks/profile_nodes.py [--seconds 20] [--rate 30] [--in-process] [--py-spy]
        [--env KEY=VALUE]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from common import Table, compose_frames, isolate_domain, proc_cpu_s
from procs import NODES, ONE_PROCESS, Camera, NodeProcesses

HERE = pathlib.Path(__file__).resolve().parent
#: The parts, in the order of the table (names as _instrument.py charges them).
PARTS = ("executor (wait set, wake-up)", "take (deserialise)", "timers (take, fallback timers)",
         "pairing by stamp", "message -> arrays", "model", "MediaPipe (calling thread)", "face ids (tracking)",
         "arrays -> messages", "publish (serialise, write)", "diagnostics", "logging",
         "callback's own Python (pairing, bookkeeping)")
#: py-spy's sampling rate, Hz (its default 100 sees few samples of a node at 5% of a core)
SPY_HZ = 250


def spy(pid: int, seconds: float, out: pathlib.Path) -> list[tuple[str, float]]:
    """py-spy record of ``pid``: the 12 functions most often on top of a stack, with their share."""
    exe = shutil.which("py-spy", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("py-spy")
    if not exe:
        return [("py-spy not installed (.venv/bin/pip install -r requirements.txt)", 0.0)]
    subprocess.run([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(SPY_HZ),
                    "--format", "raw", "--nonblocking", "-o", str(out)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not out.exists():
        return [("py-spy recorded nothing (ptrace not permitted?)", 0.0)]
    leaves: collections.Counter = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit() and stack:
            leaf = stack.split(";")[-1]
            func, _, where = leaf.partition(" (")
            leaves[f"{func} ({where.split(':')[0].rsplit('/', 1)[-1]}"] += int(n)
    total = sum(leaves.values()) or 1
    return [(f, 100.0 * n / total) for f, n in leaves.most_common(12)]


class Streaming:
    """The camera streaming to ``procs`` at ``rate`` Hz from a thread, while in the block."""

    def __init__(self, procs: NodeProcesses, frames, rate: float, final_only: bool):
        self.cam = Camera.for_nodes(procs, frames, final_only=final_only)
        self.rate = rate
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True)

    def _stream(self) -> None:
        k = 1000
        while not self._halt.is_set():
            self.cam.stream(self.rate, 1.0, start_index=k)
            k += int(self.rate)

    def __enter__(self):
        self._thread.start()
        time.sleep(3.0)  # settle at the rate
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join(5.0)
        self.cam.close()


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds of camera input")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    ap.add_argument("--in-process", action="store_true", help="all nodes in one emotion-perception pipeline")
    ap.add_argument("--py-spy", action="store_true", help="also sample each process with py-spy afterwards")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment variable of the node processes (repeatable), e.g. "
                         "MALLOC_MMAP_THRESHOLD_=131072 to see glibc's default for large buffers")
    ap.add_argument("--data", help="shared data directory")
    ap.add_argument("--final-only", action="store_true",
                    help="listen to emotion and attention only, as a behaviour tree does (with --in-process the "
                         "messages between the nodes then stay in the process; a listener on an intermediate "
                         "topic sends that topic through DDS)")
    a = ap.parse_args(argv)
    isolate_domain()
    frames = compose_frames(640, 480, 1, 90, a.data)
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix="profile_nodes_"))
    extra_env = dict(kv.split("=", 1) for kv in a.env)
    with NodeProcesses(landmark_params={"max_faces": 1}, in_process=a.in_process,
                       launcher=(str(HERE / "_instrument.py"),),
                       env={"INSTRUMENT_OUT": str(out_dir), **extra_env}) as procs:
        running = procs.running()
        with Streaming(procs, frames, a.rate, a.final_only):
            pids = procs.pids()
            cpu0 = {n: proc_cpu_s(p) for n, p in pids.items()}
            for p in pids.values():
                os.kill(p, signal.SIGUSR1)
            t0 = time.monotonic()
            time.sleep(a.seconds)
            for p in pids.values():
                os.kill(p, signal.SIGUSR2)
            t1 = time.monotonic()
            cpu1 = {n: proc_cpu_s(p) for n, p in pids.items()}
            time.sleep(1.0)
    spied: dict[str, list] = {}
    if a.py_spy:  # on processes of their own, without the instrumentation's wrappers
        with NodeProcesses(landmark_params={"max_faces": 1}, in_process=a.in_process, env=extra_env) as plain:
            with Streaming(plain, frames, a.rate, a.final_only):
                for n, p in plain.pids().items():
                    spied[n] = spy(p, min(a.seconds, 15.0), out_dir / f"spy-{n.split()[0]}.txt")
    n_frames = a.rate * (t1 - t0)
    per_frame = {n: 1e3 * (cpu1[n] - cpu0[n]) / n_frames for n in pids}
    reports = {}
    for n, p in pids.items():
        f = out_dir / f"{p}.json"
        if f.exists():
            reports[n] = json.loads(f.read_text())
    # per node: part -> ms per frame
    nodes = [n for n in NODES if n in running]
    table: dict[str, dict[str, float]] = {n: {} for n in nodes}
    calls: dict[str, dict[str, float]] = {}  # node -> part -> calls per frame
    threads: dict[str, dict[str, float]] = {}
    for proc_name, rep in reports.items():
        threads[proc_name] = {g: 1e3 * s / (a.rate * rep["seconds"]) for g, s in rep["threads"].items()}
        for node, parts in rep["parts"].items():
            node = node if node in table else (proc_name if proc_name in table else node)
            for part, (n_calls, ns) in parts.items():
                table.setdefault(node, {})[part] = table.get(node, {}).get(part, 0.0) + ns / 1e6 / (
                    a.rate * rep["seconds"])
                calls.setdefault(node, {})[part] = calls.get(node, {}).get(part, 0.0) + n_calls / (
                    a.rate * rep["seconds"])
    layout = "every node in one process" if a.in_process else "every node in its own process"
    if a.in_process and "(unattributed)" in table:  # what no node's callback ran: the shared executor's waits
        table["(six nodes' executor)"] = table.pop("(unattributed)")
        calls["(six nodes' executor)"] = calls.pop("(unattributed)", {})
    cols = list(table)
    t = Table("profile_in_process" if a.in_process else "profile",
              f"Where the CPU goes, ms per frame at {a.rate:g} Hz, 640x480 one face, {layout}",
              ["part", *cols])
    for part in PARTS:
        if any(part in table[c] for c in cols):
            t.add(part, *(table[c].get(part, 0.0) for c in cols))
    t.add("sum of the parts above", *(sum(table[c].values()) for c in cols))
    if not a.in_process:
        for label, group in (("threads: main (executor, callbacks)", ("main",)),
                             ("threads: MediaPipe's Python dispatchers", ("python",)),
                             ("threads: landmark workers (MediaPipe calls)", ("lm-worker",)),
                             ("threads: MediaPipe's own (drishti)", ("drishti",)),
                             ("threads: Fast DDS", ("dds",)), ("threads: LiteRT's pool", ("litert",)),
                             ("threads: other", ("other",))):
            t.add(label, *(sum(threads.get(c, {}).get(g, 0.0) for g in group) for c in cols))
        t.add("process CPU (from /proc)", *(per_frame.get(c, float("nan")) for c in cols))
    else:
        th = threads.get(ONE_PROCESS, {})
        t.notes.append("Threads of the one process, ms per frame: " + ", ".join(
            f"{g} {v:.2f}" for g, v in sorted(th.items(), key=lambda kv: -kv[1])) +
            f"; process CPU {per_frame.get(ONE_PROCESS, float('nan')):.2f} ms per frame.")
    # waits of each executor (one process: the landmark node's own, and the six nodes' shared one)
    waits = {n: c[PARTS[0]] for n, c in calls.items() if c.get(PARTS[0])}
    t.notes.append("Executor waits per frame: " + ", ".join(f"{n} {v:.2f}" for n, v in waits.items()) + ".")
    t.data = {"parts_ms_per_frame": table, "calls_per_frame": calls, "threads_ms_per_frame": threads,
              "process_ms_per_frame": per_frame, "py_spy_top": spied}
    t.notes.append(f"{a.seconds:g} s measured; each part's CPU is the calling thread's CPU time inside its "
                   "functions, exclusive of the other parts it calls (benchmarks/_instrument.py). The Python parts "
                   "run on the executor thread (landmark: on its worker threads); the rest of a process's CPU is "
                   "MediaPipe's and Fast DDS's own threads and the interpreter's wake-ups.")
    t.done()
    for n, top in spied.items():
        print(f"\npy-spy, {n} (share of samples; runnable time, not CPU):")
        for f, share in top:
            print(f"  {share:5.1f}%  {f}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
