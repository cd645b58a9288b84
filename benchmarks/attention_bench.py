"""Per-estimator cost of the attention package, per face, on real MediaPipe output.

    .venv/bin/python benchmarks/attention_bench.py [--faces 2000]

Times each part separately (head pose from the matrix and from landmarks, gaze
features + geometric gaze, eye states of both eyes, mouth, looking) and the whole
:class:`AttentionEstimator.update_arrays` (all parts plus blink/talking state) over
muxspace faces; prints the median per face in milliseconds. The issue's budget is
0.5 ms per estimator per face.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np

from emotion_perception.attention import AttentionEstimator, AttentionParams, gaze_features
from emotion_perception.attention.gaze import focal_normalised
from emotion_perception.attention.geometry import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio, mouth_aspect_ratio, to_pixels
from emotion_perception.attention.head_pose import head_pose_from_landmarks, head_pose_from_matrix
from emotion_perception.attention.looking import LookingModel
from emotion_perception.types import Blendshape as B

DATA = pathlib.Path(os.environ.get("EMOTION_PERCEPTION_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
BUDGET_MS = 0.5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=2000)
    args = ap.parse_args()
    with np.load(DATA / "muxspace" / "features.npz", allow_pickle=False) as z:
        n = args.faces
        lm, bs, tf, wh = z["landmarks"][:n].astype(np.float32), z["blendshapes"][:n], z["transform"][:n], z["image_wh"][:n]
    params = AttentionParams.load()
    pix = [to_pixels(lm[i], wh[i]) for i in range(n)]
    heads = [head_pose_from_matrix(tf[i]) for i in range(n)]
    feats = [gaze_features(pix[i], heads[i], wh[i]) for i in range(n)]
    gazes = [params.gaze.estimate(feats[i], wh[i]) for i in range(n)]
    est = AttentionEstimator(params)

    def eyes(i):
        p = pix[i]
        params.eye.probabilities(eye_aspect_ratio(p, RIGHT_EYE), bs[i, B.eyeBlinkRight], bs[i, B.eyeSquintRight],
                                 bs[i, B.eyeWideRight])
        params.eye.probabilities(eye_aspect_ratio(p, LEFT_EYE), bs[i, B.eyeBlinkLeft], bs[i, B.eyeSquintLeft],
                                 bs[i, B.eyeWideLeft])

    parts = {
        "landmarks -> pixels": lambda i: to_pixels(lm[i], wh[i]),
        "head pose (matrix)": lambda i: head_pose_from_matrix(tf[i]),
        "head pose (landmark fit)": lambda i: head_pose_from_landmarks(pix[i], params.canonical_mesh),
        "gaze (features + geometric)": lambda i: params.gaze.estimate(gaze_features(pix[i], heads[i], wh[i]), wh[i]),
        "eye states (both eyes)": eyes,
        "mouth state": lambda i: params.mouth.open_probability(mouth_aspect_ratio(pix[i]), bs[i, B.jawOpen],
                                                               bs[i, B.mouthClose]),
        "looking": lambda i: params.looking.probability(LookingModel.angle_deg(
            gazes[i].direction, (feats[i].eye_u, feats[i].eye_v), focal_normalised(wh[i], 60.0))),
        "AttentionEstimator (all, with state)": lambda i: est.update_arrays("f", lm[i], bs[i], tf[i], tuple(wh[i]),
                                                                            i / 30),
    }
    print(f"{'estimator':40s} {'median ms/face':>15s} {'p95':>8s}")
    worst = 0.0
    for name, fn in parts.items():
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t0) * 1000)
        med, p95 = float(np.median(times)), float(np.percentile(times, 95))
        print(f"{name:40s} {med:15.4f} {p95:8.4f}")
        if "AttentionEstimator" not in name:
            worst = max(worst, med)
    print(f"slowest single estimator {worst:.4f} ms/face (budget {BUDGET_MS} ms)")
    return 0 if worst < BUDGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
