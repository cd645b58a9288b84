"""Cost per update and output stability of the sequence models (lstm, lstm-3class,
transformer), through the same ``EmotionModel.update`` path the nodes use.

Cost: one face, real inputs (RAF-DB test blendshapes, muxspace landmarks), the
median and 95th percentile of the wall time of ``update`` (features + buffer + LiteRT,
flip-averaged) over ``--updates`` calls after a warm-up.

Stability (``--videos`` a sequence-layout .npz, see ``video_sequences.py``): each clip
fed frame by frame as the node would. *Flicker rate* = changes of the published label
between consecutive confident estimates, per minute of video with a face; *first
confident label* = seconds from a face's first frame to its first confident estimate.
Both for several output smoothing settings (``smoothing_frames``).

    .venv/bin/python benchmarks/sequence_models.py --videos /tmp/videos.npz
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from emotion_perception import classifiers
from emotion_perception.classifiers.base import FrameInput

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = ("lstm", "lstm-3class", "transformer")


def cost(name: str, updates: int, data: pathlib.Path) -> dict:
    m = classifiers.load(name)
    if "blendshapes" in m.needs:
        rows = np.load(data / "rafdb_blendshapes" / "test.npz")["blendshapes"][:200]
        frames = [FrameInput(blendshapes=r) for r in rows]
    else:
        d = np.load(data / "muxspace" / "features.npz")
        frames = [FrameInput(landmarks=d["landmarks"][i].astype(np.float32), image_wh=tuple(d["image_wh"][i]))
                  for i in range(200)]
    for i in range(50):
        m.update("f", frames[i % len(frames)])
    t = []
    for i in range(updates):
        t0 = time.perf_counter()
        m.update("f", frames[i % len(frames)])
        t.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(float(np.median(t)), 3), "p95_ms": round(float(np.percentile(t, 95)), 3)}


def stability(name: str, videos: dict, smoothing: float) -> list[dict]:
    m = classifiers.load(name, smoothing_frames=smoothing)
    out = []
    for s, (start, length) in enumerate(zip(videos["sequence_start"], videos["sequence_length"])):
        fps = float(videos["fps"][s])
        wh = tuple(int(v) for v in videos["image_wh"][s])
        labels, first_conf, seen, face_frames = [], None, 0, 0
        m.reset()
        for f in range(start, start + length):
            lm, bs = videos["landmarks"][f], videos["blendshapes"][f]
            if not np.all(np.isfinite(bs)):
                m.forget("v")
                seen = 0
                continue
            face_frames += 1
            seen += 1
            e = m.update("v", FrameInput(landmarks=lm, blendshapes=bs, image_wh=wh))
            if e.confident:
                labels.append(e.label)
                if first_conf is None:
                    first_conf = (seen - 1) / fps
            else:
                labels.append(None)
        changes = sum(1 for a, b in zip(labels, labels[1:]) if a and b and a != b)
        minutes = face_frames / fps / 60
        counts = {c: labels.count(c) for c in set(labels) if c}
        out.append({"video": str(videos["source"][s]), "minutes_with_face": round(minutes, 2),
                    "flicker_per_min": round(changes / minutes, 1) if minutes else None,
                    "first_confident_s": round(first_conf, 3) if first_conf is not None else None,
                    "top_label": max(counts, key=counts.get) if counts else None})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", help="sequence-layout .npz of unlabelled videos")
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    ap.add_argument("--smoothing", default="0,3,6", help="smoothing_frames values to compare")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    res = {"cost": {n: cost(n, args.updates, pathlib.Path(args.data)) for n in models}}
    for n, c in res["cost"].items():
        print(f"{n}: update median {c['median_ms']} ms, p95 {c['p95_ms']} ms")
    if args.videos:
        with np.load(args.videos) as z:
            videos = {k: z[k] for k in z.files}
        res["stability"] = {}
        for n in models:
            for sm in (float(v) for v in args.smoothing.split(",")):
                rows = stability(n, videos, sm)
                res["stability"][f"{n} smoothing={sm:g}"] = rows
                for r in rows:
                    print(f"{n} smoothing={sm:g} {r['video']}: {r['flicker_per_min']} label changes/min, "
                          f"first confident {r['first_confident_s']} s, mostly {r['top_label']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sequence_models_{'_'.join(models)}.json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
