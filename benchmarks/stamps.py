"""Cameras with faulty stamps, every node in its own process: the share of images that
get each output at 30 Hz, and the face ids a late frame costs.

Four streams, one after the other, of 640x480 with one real face: stamps from the
clock (the reference), every stamp 0 (USB drivers that leave it unset), every stamp
sent twice (a frozen or coarse clock), and every 10th frame stamped 200 ms before its
predecessor (late frames). Outputs are matched to images by ``image_seq``, so images
with equal stamps count separately; an image counts as answered on a topic when an
array for it arrived there.

    .venv/bin/python benchmarks/stamps.py [--seconds 60] [--rate 30] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import Table, compose_frames, isolate_domain
from procs import NODES, Camera, NodeProcesses

MODES = ("stamped", "stamp 0", "every stamp twice", "every 10th frame 200 ms late")
#: How late the late frames are, ns (the issue's 200 ms), and how often (every 10th).
LATE_NS, LATE_EVERY = 200_000_000, 10


class SeqCamera(Camera):
    """The benchmark camera, recording outputs by ``image_seq`` and the face ids of faces/mesh."""

    def __init__(self, topics):
        self.seqs: dict[str, set[int]] = {t: set() for t in topics}
        self.ids: set[str] = set()
        super().__init__(topics)

    def _recorder(self, topic):
        got, seqs = self.got[topic], self.seqs[topic]

        def cb(msg):
            t = time.time_ns()
            with self.lock:
                got.setdefault(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, t)
                seqs.add(msg.image_seq)
                if topic == "faces/mesh":
                    self.ids.update(f.face_id for f in msg.faces)
        return cb

    def clear(self) -> None:
        with self.lock:
            for s in self.seqs.values():
                s.clear()
            self.ids.clear()

    def stream_stamps(self, mode: str, rate_hz: float, seconds: float) -> int:
        """Publish at ``rate_hz`` for ``seconds`` with the stamps of ``mode``; images sent."""
        n = int(rate_hz * seconds)
        t0 = time.monotonic()
        prev = 0
        for k in range(n):
            m = self._msgs[k % len(self._msgs)]
            now = time.time_ns()
            if mode == "stamp 0":
                stamp = 0
            elif mode == "every stamp twice":
                stamp = prev if k % 2 else now
            elif mode.startswith("every 10th") and k % LATE_EVERY == LATE_EVERY - 1:
                stamp = prev - LATE_NS
            else:
                stamp = now
            prev = stamp
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            self.pub.publish(m)
            delay = t0 + (k + 1) / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return n


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of each stream")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    ap.add_argument("--quick", action="store_true", help="10 s per stream")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    seconds = 10.0 if a.quick else a.seconds
    isolate_domain()
    frames = compose_frames(640, 480, 1, 90, a.data)
    results = {}
    with NodeProcesses(landmark_params={"max_faces": 1}) as procs:
        topics = [NODES[n][1] for n in procs.running()]
        cam = SeqCamera(topics)
        try:
            cam.prepare(frames)
            ready = cam.wait_first(topics, timeout_s=60.0)
            print(f"  nodes running: {', '.join(procs.running())}; all answering: {ready}", file=sys.stderr)
            for mode in MODES:
                time.sleep(2.0)
                cam.clear()
                dropped0 = cam.diag_value("landmark_node", "dropped_total")
                sent = cam.stream_stamps(mode, a.rate, seconds)
                time.sleep(3.0)
                with cam.lock:
                    answered = {t: len(cam.seqs[t]) for t in topics}
                    ids = sorted(cam.ids)
                results[mode] = {"sent": sent, "answered": answered, "face_ids": ids,
                                 "landmark_dropped": cam.diag_value("landmark_node", "dropped_total") - dropped0}
                print(f"  {mode}: {results[mode]}", file=sys.stderr)
        finally:
            cam.close()
        log_lines = {n: [ln for ln in procs.log_lines(n) if "stamp" in ln and "WARN" in ln]
                     for n in procs.running()}

    t = Table("stamps", f"Cameras with faulty stamps: images answered per output, every node in its own "
                        f"process, 640x480 one face at {a.rate:g} Hz, {seconds:g} s per stream",
              ["stamps", "images sent", *topics, "face ids"])
    for mode, r in results.items():
        t.add(mode, r["sent"], *(f"{r['answered'][tp] / r['sent']:.1%}" for tp in topics), len(r["face_ids"]))
    t.data = {"results": results, "stamp_log_lines": log_lines}
    for mode, r in results.items():
        if mode == "stamped":
            continue
        worst = min(r["answered"].get(tp, 0) for tp in ("emotion", "attention")) / r["sent"]
        t.notes.append(f"Target: {mode}: outputs for >= 99% of images -> emotion and attention answered at least "
                       f"{worst:.1%}: {'met' if worst >= 0.99 else 'NOT met'}.")
    late = results[MODES[3]]
    t.notes.append(f"Target: late frames: one face id -> {len(late['face_ids'])} ({', '.join(late['face_ids'])}): "
                   f"{'met' if len(late['face_ids']) == 1 else 'NOT met'}.")
    t.notes.append("Log lines about stamps, per node: " + "; ".join(
        f"{n}: {len(v)}" for n, v in log_lines.items() if v) + ".")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
