"""Loading the shared data sets for the frame, image and fusion models.

Every loader reads the ``.npz`` files of ``shared/data`` with ``allow_pickle=False``
and returns plain dicts of arrays in the frame layout (``landmarks``, ``blendshapes``,
``image_wh``, ``label``; optional ``subject``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import pathlib
import re

import numpy as np

from ..types import EMOTIONS_7

#: Environment variable naming the shared data directory.
DATA_ENV = "EMOTION_PERCEPTION_DATA"
#: Fraction of muxspace subjects held out for validation/test (by hash of the name).
MUXSPACE_HELDOUT_FRACTION = 0.2


def default_data_dir() -> pathlib.Path:
    """``$EMOTION_PERCEPTION_DATA`` or ``../shared/data`` beside the repository root."""
    env = os.environ.get(DATA_ENV)
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _load(path: pathlib.Path, keys=None) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in (keys or z.files) if k in z.files}


def keep_7(d: dict) -> dict:
    """Rows whose label is one of the seven classes (drops contempt)."""
    m = np.isin(d["label"], EMOTIONS_7)
    return {k: (v[m] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(m) else v) for k, v in d.items()}


def load_fer(data_dir, split: str = "train") -> dict:
    """FER-2013 ``train`` or ``public_test`` as landmarks + blendshapes."""
    d = _load(pathlib.Path(data_dir) / "fer2013" / f"{split}.npz",
              ["landmarks", "blendshapes", "image_wh", "label", "image"])
    return keep_7(d)


def load_rafdb(data_dir, split: str = "train") -> dict:
    """RAF-DB ``train`` or ``test`` blendshapes."""
    return keep_7(_load(pathlib.Path(data_dir) / "rafdb_blendshapes" / f"{split}.npz",
                        ["blendshapes", "label", "source"]))


def subject_of(image_name: str) -> str:
    """LFW-style ``First_Last_0003.jpg`` -> ``First_Last``; other names are their own subject."""
    stem = pathlib.Path(image_name).stem
    return re.sub(r"_\d+$", "", stem)


def muxspace_test_images(data_dir) -> set[str]:
    """Names of the photos in ``muxspace/images`` (always held out: tests use them)."""
    f = pathlib.Path(data_dir) / "muxspace" / "images" / "labels.csv"
    with open(f) as fh:
        return {row["image"] for row in csv.DictReader(fh)}


def muxspace_heldout_mask(names, data_dir) -> np.ndarray:
    """True for rows in the held-out split: whole subjects, chosen by a hash of the
    subject name (reproducible, about 20% of subjects), plus every subject of a photo
    in ``muxspace/images``."""
    fixed = {subject_of(n) for n in muxspace_test_images(data_dir)}
    out = np.zeros(len(names), dtype=bool)
    for i, n in enumerate(names):
        s = subject_of(str(n))
        h = int(hashlib.sha1(s.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out[i] = s in fixed or h < MUXSPACE_HELDOUT_FRACTION
    return out


def load_muxspace(data_dir, split: str = "train") -> dict:
    """muxspace photos, ``train`` or ``heldout`` (subject-disjoint, see above)."""
    d = _load(pathlib.Path(data_dir) / "muxspace" / "features.npz",
              ["landmarks", "blendshapes", "image_wh", "label", "image"])
    d = keep_7(d)
    m = muxspace_heldout_mask(d["image"], data_dir)
    if split == "train":
        m = ~m
    elif split != "heldout":
        raise ValueError(f"split must be train or heldout, got {split!r}")
    d = {k: v[m] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(m) else v for k, v in d.items()}
    d["subject"] = np.array([subject_of(str(n)) for n in d["image"]])
    return d


def cap_per_class(labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices keeping at most ``cap`` rows of each class (random, reproducible)."""
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) > cap:
            idx = rng.choice(idx, cap, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def concat(*ds: dict, keys=("landmarks", "blendshapes", "image_wh", "label")) -> dict:
    return {k: np.concatenate([d[k] for d in ds]) for k in keys if all(k in d for d in ds)}


def rafdb_validation_mask(labels: np.ndarray, seed: int = 0, fraction: float = 0.1) -> np.ndarray:
    """The RAF-DB-train validation rows shared by every blendshape model and the fusion.

    Per class (in ``EMOTIONS_7`` order) ``round(fraction * n)`` rows drawn by
    ``np.random.default_rng(seed).choice`` without replacement: the same draw as the
    LSTM's validation split (``training/lstm.py``), so that the fusion's weights are
    fitted on rows no member was fitted on.
    """
    rng = np.random.default_rng(seed)
    y = np.array([EMOTIONS_7.index(str(v)) for v in labels])
    val = np.zeros(len(y), bool)
    for c in range(len(EMOTIONS_7)):
        idx = np.flatnonzero(y == c)
        val[rng.choice(idx, int(round(len(idx) * fraction)), replace=False)] = True
    return val
