"""Fitting the fusion (``fusion.json``): per-model temperatures, pooling weights and
a class bias, on validation rows no member model was fitted on.

Reproduce the shipped file (after every member model is final)::

    emotion-perception train fused [--data DIR] [--out DIR]

Validation sets (never a test split):
- ``rafdb_val``: the RAF-DB-train rows of ``data.rafdb_validation_mask`` (held out by
  svm-blendshapes and by the LSTMs): blendshape models only.
- ``fer_cal``: the FER-2013-train + muxspace-train rows svm-landmarks kept back for
  its calibrator (``frame.svm_landmarks_rows``): landmark and blendshape models.
A model takes part in a set only if it can run on its inputs and the set is held out
for it (:data:`HELD_OUT`).

One profile per validation set (its members are the models held out on it). Step 1,
calibration: each member's temperature minimises its NLL on the set (ECE before and
after reported on the test sets). Step 2, pooling: the weights (>= 0) and the 7 class
biases minimise the NLL of the pooled distribution on the set. (One joint fit over
both sets was tried first: the blendshape SVM's temperature then served FER-2013's
domain and RAF-DB accuracy fell from 0.707 to 0.700.) Then the metrics on
the test sets (RAF-DB test, FER-2013 public test, muxspace held-out subjects), for
the fused model and for every member alone, go into ``fusion.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from ..fusion import CIRCUMPLEX, PARAMS_FILE, PoolingParams, to_7
from ..types import EMOTIONS_7
from . import data as D
from .metrics import expected_calibration_error, report

#: Candidate members, in order.
#: Members fitted, in order. A deployment runs one frame model (frame_node's
#: ``model``) and one LSTM head (lstm_node's ``model``), so each profile holds the
#: combination that runs together: the landmark SVM with the 7-class LSTM where
#: landmarks exist, the blendshape SVM with it where only blendshapes do.
#: gnn-landmarks is left out: it is weaker than svm-landmarks on the same rows
#: (models/gnn-landmarks.md); lstm-3class says nothing about 5 of the classes and
#: joins with the default weight when it is the LSTM head running.
CANDIDATES = ("svm-blendshapes", "lstm", "svm-landmarks", "transformer")
#: Model files whose sha256 fusion.json records (a retrained member makes the
#: recorded fit stale; the tests compare these with SHA256SUMS).
MEMBER_FILES = {"svm-blendshapes": "svm_blendshapes.skops", "svm-landmarks": "svm_landmarks.skops",
                "lstm": "lstm.tflite", "transformer": "transformer.tflite"}
#: Validation set -> models fitted on it (the set must be held out for each).
HELD_OUT = {
    "rafdb_val": ("svm-blendshapes", "lstm"),
    "fer_cal": ("svm-landmarks", "lstm"),
}
#: Weight of a present model no profile was fitted with: image-cnn (no labelled face
#: images here to fit on; FER-2013 is here only as landmarks) or a model trained after
#: the fusion. Temperature 1.
DEFAULT_WEIGHT = 0.5
#: L2 pull of the class biases towards 0 (keeps them small on small sets).
BIAS_L2 = 1e-3


def _load_members(names):
    from ..assets import ModelFileError
    from ..classifiers import load

    out = {}
    for n in names:
        try:
            out[n] = load(n)
        except (ModelFileError, ImportError, ModuleNotFoundError, FileNotFoundError) as e:
            print(f"fusion: {n} not available ({type(e).__name__}), left out")
    return out


def _predict(model, arrays) -> np.ndarray:
    keys = {k: v for k, v in arrays.items() if k in ("landmarks", "blendshapes", "image_wh")}
    p = model.predict_frames(**keys)
    return np.stack([to_7(model.class_names, r) for r in p])


def _can_run(model, arrays) -> bool:
    return set(model.needs) - {"image_wh"} <= set(arrays)


def _fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(p, 1e-4, 1))

    def nll(log_t):
        z = logp / np.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-2.5, 2.5), method="bounded").x))


def _fit_pooling(sets, members, temps):
    """sets: list of (per_model {name: (N,7)}, y). Returns weights, bias."""
    from scipy.optimize import minimize

    names = list(members)

    def unpack(theta):
        return dict(zip(names, np.exp(theta[:len(names)]))), theta[len(names):]

    def loss(theta):
        w, b = unpack(theta)
        total, n = 0.0, 0
        for per, y in sets:
            z = b + sum(w[m] * np.log(np.clip(p, 1e-4, 1)) / temps[m] for m, p in per.items())
            z = z - z.max(1, keepdims=True)
            total += -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).sum()
            n += len(y)
        return total / n + BIAS_L2 * float((b ** 2).sum())

    theta0 = np.concatenate([np.zeros(len(names)), np.zeros(len(EMOTIONS_7))])
    res = minimize(loss, theta0, method="L-BFGS-B")
    w, b = unpack(res.x)
    return {k: round(float(v), 5) for k, v in w.items()}, (b - b.mean()).round(5).tolist()


def _labels(lab) -> np.ndarray:
    return np.array([EMOTIONS_7.index(str(v)) for v in lab])


def _valence_sanity(p: np.ndarray, labels) -> dict:
    """Mean predicted valence/arousal per true class and their correlation with the
    true class's table value."""
    va = p @ np.array([CIRCUMPLEX[c] for c in EMOTIONS_7])
    truth = np.array([CIRCUMPLEX[str(c)] for c in labels])
    per = {c: [round(float(v), 3) for v in va[np.asarray(labels) == c].mean(0)]
           for c in EMOTIONS_7 if np.any(np.asarray(labels) == c)}
    return {"mean_valence_arousal_by_true_class": per,
            "valence_correlation": round(float(np.corrcoef(va[:, 0], truth[:, 0])[0, 1]), 4),
            "arousal_correlation": round(float(np.corrcoef(va[:, 1], truth[:, 1])[0, 1]), 4)}


def train_fusion(data_dir, out, register: bool = True) -> dict:
    from .frame import register_sums, svm_landmarks_rows

    members = _load_members(CANDIDATES)
    raf = D.load_rafdb(data_dir, "train")
    val = D.rafdb_validation_mask(raf["label"])
    rows, _, cal, _ = svm_landmarks_rows(data_dir)
    # profile order matters for ties (PoolingParams.profile_for): the landmark profile first
    vsets = {"fer_cal": ({k: rows[k][cal] for k in ("landmarks", "blendshapes", "image_wh")}, rows["label"][cal]),
             "rafdb_val": ({"blendshapes": raf["blendshapes"][val]}, raf["label"][val])}
    preds = {}
    for s, (arrays, lab) in vsets.items():
        for m, model in members.items():
            if m in HELD_OUT[s] and _can_run(model, arrays):
                preds.setdefault(s, {})[m] = _predict(model, arrays)
                print(f"fusion: {m} on {s}: {report(preds[s][m], lab)}", flush=True)
    used = sorted({m for s in preds for m in preds[s]}, key=CANDIDATES.index)
    profiles = []
    for s, per in preds.items():
        y = _labels(vsets[s][1])
        fitted = sorted(per, key=CANDIDATES.index)
        temps = {m: round(_fit_temperature(per[m], y), 5) for m in fitted}
        weights, bias = _fit_pooling([(per, y)], fitted, temps)
        profiles.append({"name": s, "members": fitted, "temperature": temps, "weight": weights, "bias": bias})
    params = PoolingParams.from_json({"profiles": profiles, "default_weight": DEFAULT_WEIGHT})

    tests = {"rafdb_test": D.load_rafdb(data_dir, "test"), "fer2013_public_test": D.load_fer(data_dir, "public_test"),
             "muxspace_heldout": D.load_muxspace(data_dir, "heldout")}
    metrics, calibration, va = {}, {}, {}
    for t, d in tests.items():
        arrays = {k: d[k] for k in ("landmarks", "blendshapes", "image_wh") if k in d}
        y = _labels(d["label"])
        per = {m: _predict(members[m], arrays) for m in used if _can_run(members[m], arrays)}
        metrics[t] = {m: report(p, d["label"]) for m, p in per.items()}
        # the fused model runs the members of the profile the inputs pick (FusedModel)
        prof = params.profile_for(per)
        fused_per = {m: p for m, p in per.items() if m in prof.members}
        for m, p in fused_per.items():
            t_m = prof.temperature[m]
            calibrated = PoolingParams.single({m: t_m}, {m: 1.0}, np.zeros(7)).pool({m: p})
            calibration.setdefault(t, {})[m] = {
                "profile": prof.name, "temperature": t_m, "ece_before": round(expected_calibration_error(p, y), 4),
                "ece_after": round(expected_calibration_error(calibrated, y), 4)}
        fused = params.pool(fused_per)
        metrics[t]["fused"] = report(fused, d["label"])
        metrics[t]["fused_members"] = sorted(fused_per, key=CANDIDATES.index)
        metrics[t]["profile"] = prof.name
        if t == "rafdb_test":
            sample = round(float((fused[:300].argmax(1) == y[:300]).mean()), 4)
        va[t] = _valence_sanity(fused, d["label"])
    from ..assets import models_dir, recorded_sums

    sums = recorded_sums(models_dir())
    result = {"model": "fused", "classes": list(EMOTIONS_7), "members": used,
              "member_sha256": {m: sums.get(MEMBER_FILES[m]) for m in used},
              "profiles": profiles, "default_weight": DEFAULT_WEIGHT,
              "class_mapping": {"transformer (6 classes)": "probabilities x 6/7, surprise 1/7",
                                "lstm-3class (happy, sad, unknown)": "unknown spread evenly over the other 5"},
              "validation_sets": {s: sorted(p, key=CANDIDATES.index) for s, p in preds.items()},
              "metrics": metrics, "calibration": calibration, "valence_arousal": va,
              "sample_accuracy_first_300_rafdb_test": sample}
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PARAMS_FILE
    path.write_text(json.dumps(result, indent=2) + "\n")
    if register:
        register_sums([path])
    print(json.dumps({k: result[k] for k in ("profiles", "metrics", "calibration", "valence_arousal")}, indent=1))
    return result


def main(argv=None) -> int:
    from ..assets import models_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(D.default_data_dir()))
    p.add_argument("--out", default=str(models_dir()))
    a = p.parse_args(argv)
    train_fusion(a.data, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
