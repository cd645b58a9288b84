"""Resident memory of the landmark node (its own process) after overload and after a
frame too large for the transport: does it come back?

1. ``--bursts`` overload bursts: 1920x1080 rgb8 at 120 Hz for 4 s, then 20 s quiet;
   the node's RSS before the first burst, at the peak, and after each pause.
2. One 8000x8000 rgb8 frame (192 MB, larger than the transport's 16 MiB shared-memory
   segment), then normal frames: did the node say so (log, /diagnostics), and what
   is its RSS 30 s later?

Target (issue 14): RSS back within 10% of its level before the overload within a
minute after it.

    .venv/bin/python benchmarks/memory.py [--bursts 4] [--settle 60] [--no-oversized]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import Table, compose_frames, isolate_domain, proc_rss_mb
from procs import Camera, NodeProcesses

BURST_S, BURST_HZ, PAUSE_S = 4.0, 120.0, 20.0


def _idle(cam: Camera, seconds: float, rate_hz: float = 5.0, start: int = 0) -> None:
    """A trickle of small frames, as a quiet camera sends."""
    end = time.monotonic() + seconds
    k = start
    while time.monotonic() < end:
        cam.publish(k)
        k += 1
        time.sleep(1 / rate_hz)


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bursts", type=int, default=4)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds watched after the last burst")
    ap.add_argument("--no-oversized", action="store_true", help="skip the 8000x8000 frame")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    isolate_domain()
    small = compose_frames(640, 480, 1, 10, a.data)
    big = compose_frames(1920, 1080, 1, 30, a.data)
    rows, data = [], {}
    with NodeProcesses(["landmark"], landmark_params={"max_faces": 1}) as procs:
        pid = procs.procs["landmark"].pid
        cam = Camera(["faces/mesh"])
        try:
            cam.prepare(small)
            cam.wait_first(["faces/mesh"], timeout_s=60.0)
            _idle(cam, 10.0)
            before = proc_rss_mb(pid)
            data["rss_before_mb"] = before
            peaks, after = [], []
            for b in range(a.bursts):
                cam.prepare(big)
                t0 = time.monotonic()
                k = 0
                peak = 0.0
                while time.monotonic() - t0 < BURST_S:
                    cam.publish(k)
                    k += 1
                    if k % 20 == 0:
                        peak = max(peak, proc_rss_mb(pid))
                    time.sleep(max(0.0, t0 + k / BURST_HZ - time.monotonic()))
                cam.prepare(small)
                _idle(cam, PAUSE_S if b + 1 < a.bursts else 0.0)
                peaks.append(peak)
                after.append(proc_rss_mb(pid))
                print(f"  burst {b + 1}: peak {peak:.0f} MB, {PAUSE_S:g} s later {after[-1]:.0f} MB", file=sys.stderr)
            settle = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < a.settle:
                _idle(cam, 5.0)
                settle.append((round(time.monotonic() - t0), proc_rss_mb(pid)))
            data.update(peaks_mb=peaks, after_pause_mb=after, settle_mb=settle)
            rows.append(("before the first burst", f"{before:.0f}"))
            for b, (p, r) in enumerate(zip(peaks, after)):
                rows.append((f"burst {b + 1}: peak / {PAUSE_S:g} s after" if b + 1 < a.bursts
                             else f"burst {b + 1}: peak / at its end", f"{p:.0f} / {r:.0f}"))
            rows.append((f"{a.settle:g} s after the last burst", f"{settle[-1][1]:.0f}"))
            final = settle[-1][1]
            within = abs(final - before) <= 0.10 * before
            first_ok = next((s for s, v in settle if abs(v - before) <= 0.10 * before), None)
            notes = [f"Target: RSS within 10% of its level before the overload within a minute -> {final:.0f} vs "
                     f"{before:.0f} MB ({(final - before) / before:+.1%}) after {a.settle:g} s"
                     f"{f', first within 10% at {first_ok} s' if first_ok is not None else ''}: "
                     f"{'met' if within and first_ok is not None and first_ok <= 60 else 'NOT met'}."]
            if not a.no_oversized:
                lost0 = cam.diag_value("landmark_node", "lost_in_transport_total")
                bad0 = cam.diag_value("landmark_node", "bad_input_total")
                rss0 = proc_rss_mb(pid)
                huge = np.full((8000, 8000, 3), 120, np.uint8)
                cam.prepare([huge])
                cam.publish(0)
                del huge
                cam.prepare(small)
                _idle(cam, 30.0)
                rss1 = proc_rss_mb(pid)
                lost = cam.diag_value("landmark_node", "lost_in_transport_total") - lost0
                bad = cam.diag_value("landmark_node", "bad_input_total") - bad0
                said = [ln for ln in procs.log_lines("landmark") if "never reached" in ln or "lost" in ln]
                data.update(oversized={"rss_before_mb": rss0, "rss_30s_after_mb": rss1, "lost_counted": lost,
                                       "bad_input_counted": bad, "log_lines": said})
                rows.append(("8000x8000 frame: RSS before / 30 s after", f"{rss0:.0f} / {rss1:.0f}"))
                notes.append(f"8000x8000 rgb8 frame: lost_in_transport_total +{lost:g}, bad_input_total +{bad:g}, "
                             f"log lines: {said[-1:] or 'none'}; RSS {rss1 - rss0:+.0f} MB 30 s later.")
        finally:
            cam.close()
    t = Table("memory", "Landmark node resident memory (MB) around 1080p 120 Hz overload bursts and an oversized frame",
              ["when", "RSS MB"])
    for r in rows:
        t.add(*r)
    t.notes.extend(notes)
    t.data = data
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
