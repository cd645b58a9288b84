"""Fitting the fusion (``fusion.json``): per-model temperatures, pooling weights and
a class bias, on validation rows no member model was fitted on.

Reproduce the shipped file (after every member model is final)::

    emotion-perception evaluate-video ../shared/data/video_labelled --output .cache/video-eval/mead
    emotion-perception evaluate-video .cache/cremad --subject 1001 --output .cache/video-eval/cremad
    emotion-perception train fused --video .cache/video-eval/mead .cache/video-eval/cremad [--data DIR] [--out DIR]

With ``--video`` (recorded runs of labelled clips through the nodes) a fourth profile,
``video_stream``, is fitted for streams and kept where it wins clips with each actor
left out (:mod:`.fusion_video`); without it, no stream profile.

Validation sets (never a test split):
- ``rafdb_val``: the RAF-DB-train rows of ``data.rafdb_validation_mask`` (held out by
  svm-blendshapes and by the LSTMs): blendshape models only.
- ``fer_cal``: the FER-2013-train + muxspace-train rows svm-landmarks kept back for
  its calibrator (``frame.svm_landmarks_rows``): landmark and blendshape models.
- ``ferplus_valid``: the FER+ ``valid`` faces (FER-2013 PublicTest) where MediaPipe
  found a face (landmarks and blendshapes from the face upscaled 4x, as
  ``shared/data/fer2013``) and a majority label exists: the image model with the
  landmark and blendshape models that run beside it in the pipeline. No member
  trained on these rows. Its fused metrics are 5-fold cross-validated (the pooling
  fitted on four folds, scored on the fifth); the pooling is shipped only where that
  beats the image model alone on accuracy and NLL, otherwise the profile gives the
  image model the whole say (the others weight 0).
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
CANDIDATES = ("image-cnn", "svm-blendshapes", "lstm", "svm-landmarks", "transformer")
#: Model files whose sha256 fusion.json records (a retrained member makes the
#: recorded fit stale; the tests compare these with SHA256SUMS).
MEMBER_FILES = {"image-cnn": "image_cnn.tflite", "svm-blendshapes": "svm_blendshapes.skops", "svm-landmarks": "svm_landmarks.skops",
                "lstm": "lstm.tflite", "transformer": "transformer.tflite"}
#: Validation set -> models fitted on it (the set must be held out for each).
HELD_OUT = {
    "ferplus_valid": ("image-cnn", "svm-landmarks", "lstm", "transformer"),
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
    keys = {k: v for k, v in arrays.items() if k in ("landmarks", "blendshapes", "image_wh", "face_crop")}
    p = model.predict_frames(**keys)
    return np.stack([to_7(model.class_names, r) for r in p])


def ferplus_valid_set(data_dir) -> tuple[dict, np.ndarray]:
    """The ``ferplus_valid`` arrays (landmarks, blendshapes, image_wh, face_crop) and
    labels: FER+ valid faces with MediaPipe landmarks and a majority label."""
    from ..classifiers.image_cnn import crop_spec
    from ..face_crop import aligned_crop
    from . import ferplus

    split = ferplus.load_split(pathlib.Path(data_dir) / "ferplus", "valid")
    faces = ferplus.mediapipe_faces(split)
    maj = ferplus.majority_labels(split["votes"])
    spec = crop_spec()
    rows, crops = [], []
    for i in np.flatnonzero(faces["found"] & (maj >= 0)):
        try:
            crops.append(aligned_crop(split["image"][i], faces["landmarks"][i], spec.size, spec.margin))
        except ValueError:
            continue
        rows.append(i)
    rows = np.array(rows)
    side = split["image"].shape[1] * ferplus.UPSCALE  # the landmarks were found on the upscaled face
    arrays = {"landmarks": faces["landmarks"][rows], "blendshapes": faces["blendshapes"][rows],
              "image_wh": np.tile([side, side], (len(rows), 1)).astype(np.int32),
              "face_crop": np.stack(crops).astype(np.float32)}
    return arrays, np.array([EMOTIONS_7[k] for k in maj[rows]])


def _cross_validated(per: dict, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fused probabilities of each row from a pooling fitted on the other folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for c in np.unique(y):  # stratified
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % folds
    out = np.zeros((len(y), len(EMOTIONS_7)))
    names = list(per)
    for k in range(folds):
        tr, te = fold != k, fold == k
        temps = {m: _fit_temperature(per[m][tr], y[tr]) for m in names}
        w, b = _fit_pooling([({m: p[tr] for m, p in per.items()}, y[tr])], names, temps)
        prm = PoolingParams.single(temps, w, np.asarray(b))
        out[te] = prm.pool({m: p[te] for m, p in per.items()})
    return out


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
    """sets: list of (per_model {name: (N,7)}, y) or (per_model, y, row_weight (N,)).
    Returns weights, bias minimising the (row-weighted) mean NLL."""
    from scipy.optimize import minimize

    names = list(members)
    sets = [s if len(s) == 3 else (*s, np.ones(len(s[1]))) for s in sets]

    def unpack(theta):
        return dict(zip(names, np.exp(theta[:len(names)]))), theta[len(names):]

    def loss(theta):
        w, b = unpack(theta)
        total, n = 0.0, 0.0
        for per, y, rw in sets:
            z = b + sum(w[m] * np.log(np.clip(p, 1e-4, 1)) / temps[m] for m, p in per.items() if m in w)
            z = z - z.max(1, keepdims=True)
            total += -(rw * (z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))).sum()
            n += rw.sum()
        return total / n + BIAS_L2 * float((b ** 2).sum())

    theta0 = np.concatenate([np.zeros(len(names)), np.zeros(len(EMOTIONS_7))])
    res = minimize(loss, theta0, method="L-BFGS-B")
    w, b = unpack(res.x)
    return {k: round(float(v), 5) for k, v in w.items()}, (b - b.mean()).round(5).tolist()


def _image_decision(per: dict, labels, y) -> dict:
    """Cross-validated fused metrics against the image model alone (raw and with its
    temperature fitted in-fold), and whether the pooling beats it on both accuracy and NLL."""
    fused = _cross_validated(per, y)
    image_cal = _cross_validated({"image-cnn": per["image-cnn"]}, y)
    res = {"n": int(len(y)), "members": sorted(per, key=CANDIDATES.index),
           "fused_5fold": report(fused, labels), "image_cnn_alone": report(per["image-cnn"], labels),
           "image_cnn_alone_calibrated_5fold": report(image_cal, labels),
           "members_alone": {m: report(p, labels) for m, p in per.items()}}
    ref = res["image_cnn_alone_calibrated_5fold"]
    res["pooling_shipped"] = bool(res["fused_5fold"]["accuracy"] > ref["accuracy"]
                                  and res["fused_5fold"]["nll"] < ref["nll"])
    print(f"fusion on ferplus_valid (5-fold): {res['fused_5fold']} vs image-cnn alone {ref}: "
          f"{'pooling shipped' if res['pooling_shipped'] else 'the image model carries the fused emotion'}",
          flush=True)
    return res


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


def _stream_profile(per: dict, labels, y, video_runs, temps: dict, image_profile: dict) -> dict:
    """The stream and warm-up profiles fitted on FER+ valid and the labelled video runs
    (:mod:`.fusion_video`), judged leave-one-actor-out against the image profile
    alone; ``shipped`` when they get more clips right."""
    from . import fusion_video as V

    members = sorted(per, key=CANDIDATES.index)
    vs = V.video_set(video_runs, members)
    profs = V.stream_profiles(per, y, vs, members, temps, image_profile)
    prof = profs[0]
    loao = V.leave_one_actor_out(per, y, vs, members, temps, image_profile)
    truth = {k: EMOTIONS_7.index(c["label"]) for k, c in enumerate(vs["clips"])}
    alone = {}
    for m in members:
        dec = {int(k): int(np.argmax(vs["per"][m][vs["clip"] == k].mean(0))) for k in np.unique(vs["clip"])}
        alone[m] = {"clips_right": int(sum(dec[k] == truth[k] for k in dec)),
                    "frames": report(vs["per"][m], [EMOTIONS_7[i] for i in vs["y"]])}
    if_on_stills = PoolingParams.from_json({"profiles": [dict(prof, min_frames={})]}).pool(per)
    res = {"runs": [str(r) for r in video_runs], "n_clips": len(vs["clips"]), "n_frames": int(len(vs["y"])),
           "subjects": sorted(set(c["subject"] for c in vs["clips"])), "video_share": V.VIDEO_SHARE,
           "members_alone_on_video_frames": alone, "leave_one_actor_out": loao,
           "ferplus_valid_if_applied_to_stills": report(if_on_stills, labels), "profiles": profs}
    res["shipped"] = bool(loao["fused"]["right"] > loao["image_profile_alone"]["right"])
    verdict = "shipped" if res["shipped"] else "not shipped"
    print(f"stream profile (leave one actor out): {loao['fused']['right']} of {loao['fused']['n']} clips vs the "
          f"image profile alone {loao['image_profile_alone']['right']}: {verdict}; weights {prof['weight']}", flush=True)
    return res


def train_fusion(data_dir, out, register: bool = True, video_runs=None) -> dict:
    from ..assets import record_sums
    from .frame import svm_landmarks_rows

    members = _load_members(CANDIDATES)
    raf = D.load_rafdb(data_dir, "train")
    val = D.rafdb_validation_mask(raf["label"])
    rows, _, cal, _ = svm_landmarks_rows(data_dir)
    # profile order matters for ties (PoolingParams.profile_for): the image profile first
    vsets = {"ferplus_valid": ferplus_valid_set(data_dir),
             "fer_cal": ({k: rows[k][cal] for k in ("landmarks", "blendshapes", "image_wh")}, rows["label"][cal]),
             "rafdb_val": ({"blendshapes": raf["blendshapes"][val]}, raf["label"][val])}
    preds = {}
    for s, (arrays, lab) in vsets.items():
        for m, model in members.items():
            if m in HELD_OUT[s] and _can_run(model, arrays):
                preds.setdefault(s, {})[m] = _predict(model, arrays)
                print(f"fusion: {m} on {s}: {report(preds[s][m], lab)}", flush=True)
    used = sorted({m for s in preds for m in preds[s]}, key=CANDIDATES.index)
    profiles, image_decision, video_decision = [], None, None
    for s, per in preds.items():
        y = _labels(vsets[s][1])
        fitted = sorted(per, key=CANDIDATES.index)
        temps = {m: round(_fit_temperature(per[m], y), 5) for m in fitted}
        weights, bias = _fit_pooling([(per, y)], fitted, temps)
        if "image-cnn" in per:
            image_decision = _image_decision(per, vsets[s][1], y)
            if not image_decision["pooling_shipped"]:
                weights = {m: (1.0 if m == "image-cnn" else 0.0) for m in fitted}
                bias = [0.0] * len(EMOTIONS_7)
            if video_runs:
                image_profile = {"name": s, "members": fitted, "temperature": temps, "weight": weights, "bias": bias,
                                 "requires": ["image-cnn"]}
                video_decision = _stream_profile(per, vsets[s][1], y, video_runs, temps, image_profile)
                if video_decision["shipped"]:
                    profiles += video_decision["profiles"]  # stream, warm-up; the most min_frames wins ties
        profiles.append({"name": s, "members": fitted, "temperature": temps, "weight": weights, "bias": bias,
                         "requires": ["image-cnn"] if "image-cnn" in per else []})
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
              "ferplus_valid_cross_validated": image_decision, "video": video_decision,
              "sample_accuracy_first_300_rafdb_test": sample}
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PARAMS_FILE
    path.write_text(json.dumps(result, indent=2) + "\n")
    if register:
        record_sums([path])
    print(json.dumps({k: result[k] for k in ("profiles", "metrics", "calibration", "valence_arousal")}, indent=1))
    return result


def main(argv=None) -> int:
    from ..assets import models_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(D.default_data_dir()))
    p.add_argument("--out", default=str(models_dir()))
    p.add_argument("--video", nargs="*", default=[], help="evaluate-video output folders (labelled clip runs)")
    a = p.parse_args(argv)
    train_fusion(a.data, a.out, video_runs=a.video)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
