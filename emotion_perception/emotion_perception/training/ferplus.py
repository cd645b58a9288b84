"""FER+ (FER-2013 images with Microsoft's ten-annotator votes) for the face-image model.

``shared/data/ferplus/{train,valid}.npz``: ``image`` (N, 48, 48) uint8 grey, ``votes``
(N, 10) over ``vote_columns`` = neutral, happiness, surprise, sadness, anger, disgust,
fear, contempt, unknown, NF (not a face).

Labels, decided here once for training, evaluation and the fusion fit:

* **Soft targets** (:func:`soft_targets`): the votes of the seven basic classes,
  normalised to sum 1. Contempt, unknown and not-a-face votes are dropped: the
  package's classes are the seven basic ones, and "unknown"/"NF" say nothing about
  which emotion it is. A face is used for training only where at least half of its
  votes went to the seven classes (so a face most annotators called contempt, unknown
  or not a face is left out: 338 + a few of the 28,558 train faces).
* **Majority label** (:func:`majority_labels`), for accuracy and macro-F1: the class
  with strictly the most votes of all ten columns, kept only where that class is one
  of the seven (ties and contempt/unknown/NF majorities are left out: 3,370 of the
  3,579 valid faces). :func:`official_subset` is the FER+ authors' stricter
  "majority" protocol (single votes dropped as outliers, the top class above half the
  remaining votes), reported beside it.

Landmarks (:func:`mediapipe_faces`): MediaPipe's Face Landmarker in IMAGE mode on each
48x48 face upscaled 4x (bicubic, RGB), as ``shared/data/fer2013`` was made; where it
finds no face the model trains on the whole 48x48 frame (:func:`~emotion_perception.
face_crop.whole_image_crop`), which is also what ``predict`` gives a pre-cropped face
photo without a detection. Results are cached (``.cache/ferplus`` under the
repository, keyed by the data file's sha256).
"""

from __future__ import annotations

import os
import pathlib
import time

import numpy as np

from ..assets import sha256_of
from ..types import EMOTIONS_7, NUM_BLENDSHAPES, NUM_LANDMARKS

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
#: FER+ column of each of EMOTIONS_7 (angry disgust fear happy neutral sad surprise).
COLUMN_OF = {"angry": 4, "disgust": 5, "fear": 6, "happy": 1, "neutral": 0, "sad": 3, "surprise": 2}
SEVEN = np.array([COLUMN_OF[c] for c in EMOTIONS_7])
#: Upscaling before MediaPipe (its face detector wants faces well above 48 px).
UPSCALE = 4
CACHE_ENV = "EMOTION_PERCEPTION_CACHE"


def load_split(data: os.PathLike, split: str) -> dict:
    """``image`` (N, 48, 48) uint8, ``votes`` (N, 10), ``name`` of one split.

    ``data`` is the ``ferplus`` folder or the shared data folder holding it.

    Raises:
        FileNotFoundError: no such split file.
        ValueError: the file lacks a key or its vote columns differ.
    """
    data = pathlib.Path(data)
    path = data / f"{split}.npz"
    if not path.is_file() and (data / "ferplus" / f"{split}.npz").is_file():
        path = data / "ferplus" / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"FER+ split {split!r} not found at {path} (pass --data: the ferplus folder)")
    with np.load(path, allow_pickle=False) as z:
        missing = {"image", "votes", "name", "vote_columns"} - set(z.files)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}")
        if tuple(str(c) for c in z["vote_columns"]) != VOTE_COLUMNS:
            raise ValueError(f"{path}: vote columns {z['vote_columns'].tolist()}, expected {VOTE_COLUMNS}")
        out = {"image": z["image"], "votes": z["votes"].astype(np.float32), "name": z["name"], "path": path}
        if {"landmarks", "blendshapes", "found"} <= set(z.files):  # a fixture: MediaPipe's results stored
            out["faces"] = {k: z[k] for k in ("landmarks", "blendshapes", "found")}
        return out


def soft_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 7) vote distributions over EMOTIONS_7, and the mask of faces usable for training."""
    v = np.asarray(votes, np.float32)
    seven = v[:, SEVEN]
    total = v.sum(1)
    usable = (seven.sum(1) > 0) & (seven.sum(1) >= 0.5 * total)
    t = seven / np.maximum(seven.sum(1, keepdims=True), 1e-9)
    return t.astype(np.float32), usable


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Index in EMOTIONS_7 of each face's strict majority, -1 where there is none."""
    v = np.asarray(votes, np.float32)
    top = v.max(1)
    unique = (v == top[:, None]).sum(1) == 1
    col = v.argmax(1)
    to7 = np.full(len(VOTE_COLUMNS), -1)
    to7[SEVEN] = np.arange(7)
    out = to7[col]
    out[~unique] = -1
    return out


def official_subset(votes: np.ndarray) -> np.ndarray:
    """Mask of the FER+ authors' majority protocol: votes of 1 dropped as outliers, the
    top class above half of the rest, and one of the seven classes."""
    v = np.asarray(votes, np.float32).copy()
    v[v <= 1] = 0
    top = v.max(1)
    ok = (top > 0.5 * v.sum(1)) & np.isin(v.argmax(1), SEVEN)
    return ok & (majority_labels(votes) >= 0)


def cache_dir() -> pathlib.Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return pathlib.Path(env) / "ferplus"
    return pathlib.Path(__file__).resolve().parents[3] / ".cache" / "ferplus"


def _detect_chunk(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe IMAGE mode on each 48x48 face upscaled by :data:`UPSCALE`."""
    import cv2

    from ..assets import verified_path
    from ..landmarks import import_mediapipe

    mp, vision, BaseOptions = import_mediapipe()
    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(verified_path("face_landmarker.task"))),
        running_mode=vision.RunningMode.IMAGE, num_faces=1, output_face_blendshapes=True)
    n = len(images)
    lms = np.full((n, NUM_LANDMARKS, 3), np.nan, np.float32)
    bss = np.full((n, NUM_BLENDSHAPES), np.nan, np.float32)
    found = np.zeros(n, bool)
    with vision.FaceLandmarker.create_from_options(opts) as lmk:
        for i, img in enumerate(images):
            big = cv2.resize(img, (img.shape[1] * UPSCALE, img.shape[0] * UPSCALE), interpolation=cv2.INTER_CUBIC)
            rgb = np.ascontiguousarray(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
            r = lmk.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            if r.face_landmarks:
                lms[i] = [(p.x, p.y, p.z) for p in r.face_landmarks[0]]
                bss[i] = [c.score for c in sorted(r.face_blendshapes[0], key=lambda c: c.index)]
                found[i] = True
    return lms, bss, found


def mediapipe_faces(split: dict, workers: int = 2, progress: bool = True) -> dict:
    """``landmarks`` (N, 478, 3) float32 normalised, ``blendshapes`` (N, 52), ``found`` (N,)
    for every face of a split (NaN where MediaPipe found none); cached."""
    if "faces" in split:
        return split["faces"]
    path = pathlib.Path(split["path"])
    cache = cache_dir() / f"{path.stem}_{sha256_of(path)[:16]}_mediapipe.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    images = split["image"]
    chunks = np.array_split(np.arange(len(images)), max(1, len(images) // 500))
    t0 = time.time()
    results = []
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_detect_chunk, images[c]) for c in chunks]
        for f in tqdm(futures, desc=f"MediaPipe on {path.name}", unit="chunk", disable=not progress):
            results.append(f.result())
    out = {"landmarks": np.concatenate([r[0] for r in results]),
           "blendshapes": np.concatenate([r[1] for r in results]),
           "found": np.concatenate([r[2] for r in results])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(cache)
    if progress:
        print(f"{path.name}: MediaPipe found a face in {out['found'].sum()} of {len(images)} "
              f"({time.time() - t0:.0f} s); cached in {cache}")
    return out


#: Faces per majority class, and faces MediaPipe misses, in the test fixture.
FIXTURE_PER_CLASS = 16
FIXTURE_NO_FACE = 8


def fixture_rows(votes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """The fixed sample of a split kept in the test fixtures: the first
    :data:`FIXTURE_PER_CLASS` faces (file order) of each majority class that MediaPipe
    found, and the first :data:`FIXTURE_NO_FACE` faces with a majority it missed."""
    maj = majority_labels(votes)
    rows = [np.flatnonzero((maj == k) & found)[:FIXTURE_PER_CLASS] for k in range(len(EMOTIONS_7))]
    rows.append(np.flatnonzero((maj >= 0) & ~found)[:FIXTURE_NO_FACE])
    return np.sort(np.concatenate(rows))


def write_fixture(data: os.PathLike, path: os.PathLike, split: str = "valid") -> pathlib.Path:
    """Write the fixture sample of ``split`` (images, votes, names, vote columns and
    MediaPipe's landmarks/blendshapes/found, which :func:`mediapipe_faces` then uses
    instead of running MediaPipe) to ``path``."""
    s = load_split(data, split)
    f = mediapipe_faces(s, progress=False)
    rows = fixture_rows(s["votes"], f["found"])
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, image=s["image"][rows], votes=s["votes"][rows].astype(np.uint8), name=s["name"][rows],
                        vote_columns=np.array(VOTE_COLUMNS), landmarks=f["landmarks"][rows],
                        blendshapes=f["blendshapes"][rows], found=f["found"][rows])
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write the FER+ test fixture (a fixed sample of valid).")
    ap.add_argument("--data", required=True, help="the ferplus folder")
    ap.add_argument("--out", required=True, help="output .npz")
    a = ap.parse_args()
    print(write_fixture(a.data, a.out))
