"""Measurement of the per-person neutral baseline (not shipped; see
``docs/frame-image-fusion.md``)::

    python -m emotion_perception.training.neutral_baseline [--data DIR]

On the muxspace held-out subjects with a neutral photo, each photo's features are
moved by ``population neutral mean - the person's neutral mean`` (the person's other
neutral photos, leave-one-out) before the shipped frame SVMs classify them; prints
accuracy and macro-F1 with and without, overall and for neutral / non-neutral photos.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from ..features import landmark_distances
from ..types import EMOTIONS_7
from . import data as D
from .metrics import report

#: FER-2013 neutral training faces averaged for the population's neutral distances.
POPULATION_FACES = 3000


def measure(data_dir) -> dict:
    from ..classifiers import load

    h = D.load_muxspace(data_dir, "heldout")
    raf = D.load_rafdb(data_dir, "train")
    fer = D.load_fer(data_dir, "train")
    lab = h["label"]
    by = defaultdict(list)
    for i, s in enumerate(h["subject"]):
        by[s].append(i)
    d_all = landmark_distances(h["landmarks"].astype(np.float32), h["image_wh"])
    rows, base_b, base_d = [], [], []
    for idx in by.values():
        neutral = [i for i in idx if lab[i] == "neutral"]
        for i in idx:
            ref = [j for j in neutral if j != i]
            if len(idx) >= 2 and ref:
                rows.append(i)
                base_b.append(h["blendshapes"][ref].mean(0))
                base_d.append(d_all[ref].mean(0))
    rows = np.array(rows)
    mu_b = raf["blendshapes"][raf["label"] == "neutral"].mean(0)
    fn = fer["label"] == "neutral"
    mu_d = landmark_distances(fer["landmarks"][fn][:POPULATION_FACES].astype(np.float32),
                              fer["image_wh"][fn][:POPULATION_FACES]).mean(0)
    bs, lm = load("svm-blendshapes"), load("svm-landmarks")
    b, x, y = h["blendshapes"][rows], d_all[rows], lab[rows]
    runs = {"svm-blendshapes": (bs.predict_frames(blendshapes=b),
                                bs.predict_frames(blendshapes=np.clip(b - np.array(base_b) + mu_b, 0, 1))),
            "svm-landmarks": (lm._proba(x), lm._proba(x - np.array(base_d) + mu_d))}
    out = {"rows": int(len(rows))}
    nn = y != "neutral"
    for name, (raw, based) in runs.items():
        r = {}
        for tag, p in (("raw", raw), ("baseline", based)):
            ok = np.array(EMOTIONS_7)[p.argmax(1)] == y
            r[tag] = {**report(p, y), "non_neutral_accuracy": round(float(ok[nn].mean()), 4),
                      "neutral_accuracy": round(float(ok[~nn].mean()), 4)}
        out[name] = r
    return out


def main(argv=None) -> int:
    import json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(D.default_data_dir()))
    print(json.dumps(measure(p.parse_args(argv).data), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
