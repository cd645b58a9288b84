"""Soak: the whole pipeline (every node in its own process) fed the shared 200 s
talking-face video (``video/franck.mp4``) looped at its own 24 fps for ``--minutes``.
Resident memory of each node must grow less than 5% after the first minute, and no
file descriptors or threads may leak. Stamps keep increasing across loops (a camera,
not a bag). Bare MediaPipe's time per frame of the same video is the reference for the
latencies reported per minute.

    .venv/bin/python benchmarks/soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import BareMediaPipe, Table, data_dir, isolate_domain, summary, video_frames
from procs import FINAL_TOPICS, NODES, Camera, NodeProcesses, Sampler

RSS_GROWTH_LIMIT = 0.05


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup-minutes", type=float, default=None,
                    help="memory baseline taken after this long (default: 1 min, or 20%% of short runs)")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    import cv2

    video = data_dir(a.data) / "video" / "franck.mp4"
    seconds = a.minutes * 60.0
    warmup_s = 60.0 * a.warmup_minutes if a.warmup_minutes is not None else min(60.0, 0.2 * seconds)
    isolate_domain()
    fps = 24.0
    with NodeProcesses(landmark_params={"max_faces": 1}) as procs:
        running = procs.running()
        topics = [NODES[n][1] for n in running]
        cam = Camera(topics)
        try:
            cam.prepare(video_frames(video, limit=24))
            cam.wait_first(topics, timeout_s=60.0)
            topics = [t for t in topics if cam.got[t]]
            running = [n for n in running if NODES[n][1] in topics]
            sampler = Sampler({n: procs.procs[n].pid for n in running}, period_s=5.0)
            sampler.start()
            cap = cv2.VideoCapture(str(video))
            sent: list[int] = []
            per_minute: list[list[int]] = [[]]
            t0 = time.monotonic()
            k = 0
            loops = 0
            while time.monotonic() - t0 < seconds:
                ok, bgr = cap.read()
                if not ok:
                    cap.release()
                    cap = cv2.VideoCapture(str(video))
                    loops += 1
                    continue
                cam._msgs = {0: cam.image_msg(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))}
                s = cam.publish(0)
                sent.append(s)
                if time.monotonic() - t0 > 60.0 * len(per_minute):
                    per_minute.append([])
                per_minute[-1].append(s)
                k += 1
                delay = t0 + k / fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            cap.release()
            time.sleep(2.0)
            sampler.stop()
            final = [t for t in FINAL_TOPICS if t in topics] or topics[-1:]
            lat_min = [[summary(cam.latencies_ms(t, m))["p50"] for t in final] for m in per_minute if m]
            got = {t: len(cam.latencies_ms(t, sent)) for t in topics}
        finally:
            cam.close()
    frames = video_frames(video, limit=240)
    with BareMediaPipe(1) as bare:
        bare_ms = summary([bare.timed(f)[0] for f in frames][10:])

    t = Table("soak", f"Soak: {a.minutes:g} min of franck.mp4 looped at 24 fps ({loops} loops), every node in its "
                      f"own process", ["node", "RSS MB at warm-up / end", "RSS growth %", "fds start / end",
                                       "threads start / end", "CPU % of one core", "verdict"])
    verdicts = []
    for n in running:
        st = sampler.stats(n, since=t0 + warmup_s)
        growth = (st["rss_mb_last"] - st["rss_mb_first"]) / st["rss_mb_first"]
        ok = growth < RSS_GROWTH_LIMIT and st["fds_last"] <= st["fds_first"] and \
            st["threads_last"] <= st["threads_first"]
        verdicts.append(ok)
        t.add(n, f"{st['rss_mb_first']:.0f} / {st['rss_mb_last']:.0f}", 100 * growth,
              f"{st['fds_first']} / {st['fds_last']}", f"{st['threads_first']} / {st['threads_last']}",
              st["cpu_percent"], "ok" if ok else "LEAK?")
        t.data[n] = {**st, "samples": sampler.samples[n]}
    t.data["received"] = got
    t.data["sent"] = len(sent)
    t.data["p50_latency_ms_per_minute"] = {"topics": final, "values": lat_min}
    t.data["bare_mediapipe_ms"] = bare_ms
    t.notes.append(f"Frames sent {len(sent)}; received: " + ", ".join(f"{k} {v}" for k, v in got.items()) + ".")
    t.notes.append(f"p50 latency per minute on {'/'.join(final)} (ms): "
                   + ", ".join("/".join(f"{v:.0f}" for v in m) for m in lat_min)
                   + f"; bare MediaPipe on the same video: p50 {bare_ms['p50']:.1f} ms per frame.")
    t.notes.append(f"Memory baseline after {warmup_s / 60:.1f} min of warm-up; target growth < "
                   f"{100 * RSS_GROWTH_LIMIT:.0f}%, fds and threads not growing: "
                   f"{'met' if all(verdicts) else 'NOT met'} for every node.")
    if procs.unavailable:
        t.notes.append("Not running: " + ", ".join(f"{n} ({w})" for n, w in procs.unavailable.items()) + ".")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
