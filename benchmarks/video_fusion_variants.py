"""What was tried on the stream fusion for issue 24, all judged leave one actor out on the
labelled clips (the ``evaluate-video`` runs that ``train fused --video`` reads), so the
numbers in ``models/fused.md`` ("On video", "Tried after the stream profile") can be
made again. Nothing here is shipped; the shipped fit is ``train fused --video``.

1. The clip decision rules (:data:`video_eval.CLIP_RULES`) on the held-out replays of
   the shipped method (the image profile alone beside it).
2. The share of the objective given to the video frames (``fusion_video.VIDEO_SHARE``,
   0.5 fixed before any clip was scored): 0.25 / 0.5 / 0.75 / 1.0, members image-cnn and
   lstm (those that already run); the share chosen inside each fold by leave one actor
   out on the other actors (nested); and what each fit (on all clips) would do to
   FER+ valid stills if it applied there (a proxy for classes the clips lack: surprise).
3. The video frames weighted per class (each class present the same weight) instead of
   per clip; and the video term as the likelihood conditioned on the classes the clips
   hold (:func:`conditional_fitter`), shares 0.5 / 0.75 / 1.0.
4. Test-time averaging of image-cnn over crop margins 0.0 / 0.05 / 0.1 (the mirrored
   crop is already averaged inside the model): the image member's recorded outputs
   replaced by offline ones (landmarks: MediaPipe VIDEO mode, as
   ``benchmarks/video_image_path.py``) and the fusion fitted and judged again. FER+
   valid and the CPU cost are measured by ``--margins`` too.

    .venv/bin/python benchmarks/video_fusion_variants.py \\
        --video .cache/video-eval/mead .cache/video-eval/cremad [--margins --cache /tmp/vip]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from emotion_perception import video_eval  # noqa: E402
from emotion_perception.fusion import PoolingParams  # noqa: E402
from emotion_perception.training import data as D  # noqa: E402
from emotion_perception.training import fusion as F  # noqa: E402
from emotion_perception.training import fusion_video as V  # noqa: E402
from emotion_perception.types import EMOTIONS_7  # noqa: E402

MEMBERS = ["image-cnn", "lstm", "svm-landmarks", "transformer"]  # the FER+ profile's members
RUNNING = ["image-cnn", "lstm"]  # the members the fusion node listens to today
SHARES = (0.25, 0.5, 0.75, 1.0)
MARGINS = (0.0, 0.05, 0.1)


class Setup:
    """FER+ valid member outputs, temperatures and the image profile, as ``train fused``."""

    def __init__(self, data_dir):
        arrays, lab = F.ferplus_valid_set(data_dir)
        models = F._load_members(MEMBERS)
        self.fer_per = {m: F._predict(models[m], arrays) for m in MEMBERS}
        self.fer_y = F._labels(lab)
        self.temps = {m: round(F._fit_temperature(self.fer_per[m], self.fer_y), 5) for m in MEMBERS}
        self.image_profile = {"name": "ferplus_valid", "members": MEMBERS, "temperature": self.temps,
                              "weight": {m: float(m == "image-cnn") for m in MEMBERS}, "bias": [0.0] * 7,
                              "requires": ["image-cnn"]}


def class_balanced(vs: dict) -> dict:
    """``vs`` with row weights giving each class present the same total (each clip the same within its class)."""
    lab = np.array([c["label"] for c in vs["clips"]])
    clips_of = {c: len({int(k) for k in np.unique(vs["clip"]) if lab[k] == c}) for c in set(lab[vs["clip"]])}
    count = np.bincount(vs["clip"], minlength=len(vs["clips"]))
    return dict(vs, row_weight=1.0 / (count[vs["clip"]] * np.array([clips_of[lab[k]] for k in vs["clip"]])))


def fitter(share=V.VIDEO_SHARE, members=None, balanced=False):
    """A profile fitter like :func:`fusion_video.stream_profiles` with another share,
    members (the others kept at weight 0) or class-balanced video rows."""
    def fit(fer_per, fer_y, vs, all_members, temps, image_profile):
        ms = list(members or all_members)
        vfit = class_balanced(vs) if balanced else vs
        old = V.VIDEO_SHARE
        V.VIDEO_SHARE = share
        try:
            prof = V.fit_profile({m: fer_per[m] for m in ms}, fer_y, dict(vfit, per={m: vfit["per"][m] for m in ms}),
                                 ms, {m: temps[m] for m in ms})
        finally:
            V.VIDEO_SHARE = old
        prof = dict(prof, members=list(all_members), temperature=dict(temps),
                    weight={m: prof["weight"].get(m, 0.0) for m in all_members})
        return [prof, V.fit_warmup_profile(image_profile, vs)]
    return fit


def conditional_fitter(share=V.VIDEO_SHARE):
    """Like ``fitter(share, RUNNING)``, but the video frames' term is the likelihood of
    the label given that it is one of the classes the clips hold (the softmax over
    those classes only): a class no clip has (surprise) is then left to FER+ valid
    instead of being pushed down by every video frame."""
    from scipy.optimize import minimize

    def fit(fer_per, fer_y, vs, all_members, temps, image_profile):
        ms = RUNNING
        present = np.zeros(len(EMOTIONS_7), bool)
        present[np.unique(vs["y"])] = True
        sets = [({m: fer_per[m] for m in ms}, fer_y, np.full(len(fer_y), (1 - share) / len(fer_y)),
                 np.ones(len(EMOTIONS_7), bool)),
                ({m: vs["per"][m] for m in ms}, vs["y"], share * vs["row_weight"] / vs["row_weight"].sum(), present)]
        sets = [t for t in sets if t[2].sum() > 0]

        def loss(theta):
            w, b = np.exp(theta[:len(ms)]), theta[len(ms):]
            total = 0.0
            for per, y, rw, mask in sets:
                z = b + sum(wi * np.log(np.clip(per[m], 1e-4, 1)) / temps[m] for wi, m in zip(w, ms))
                z = np.where(mask, z, -np.inf)
                z = z - z.max(1, keepdims=True)
                total += -(rw * (z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))).sum()
            return total / sum(t[2].sum() for t in sets) + F.BIAS_L2 * float((b ** 2).sum())

        theta = minimize(loss, np.zeros(len(ms) + len(EMOTIONS_7)), method="L-BFGS-B").x
        w = dict(zip(ms, np.exp(theta[:len(ms)])))
        b = theta[len(ms):] - theta[len(ms):].mean()
        prof = {"name": V.STREAM_PROFILE, "members": list(all_members), "temperature": dict(temps),
                "weight": {m: float(w.get(m, 0.0)) for m in all_members}, "bias": [float(v) for v in b],
                "requires": ["image-cnn", "lstm"], "min_frames": {"lstm": V.STREAM_MIN_FRAMES}}
        scale = V.video_scale(dict(prof, weight={m: float(w[m]) for m in ms}), dict(vs, per={m: vs["per"][m] for m in ms}))
        prof = dict(prof, weight={m: v * scale for m, v in prof["weight"].items()}, bias=[v * scale for v in b])
        return [prof, V.fit_warmup_profile(image_profile, vs)]
    return fit


def loao(s: Setup, vs: dict, fit=None) -> tuple[dict, dict, dict]:
    """Held-out replays {clip: stream} of the fused output and of the image profile alone, and the fits."""
    fit = fit or V.stream_profiles
    fused, alone, fits = {}, {}, {}
    for a in np.unique(vs["subject"]):
        held = vs["subject"] == a
        profs = fit(s.fer_per, s.fer_y, V.subset(vs, ~held), MEMBERS, s.temps, s.image_profile)
        fits[str(a)] = profs[0]
        ks = sorted({int(k) for k in vs["clip"][held]})
        part = [vs["clips"][k] for k in ks]
        fused.update(zip(ks, V.replay_clips(part, profs + [s.image_profile]).values()))
        alone.update(zip(ks, V.replay_clips(part, [s.image_profile]).values()))
    return fused, alone, fits


def scores(replays: dict, clips: list) -> dict:
    """Clips right under each rule (with per class under the documented one) and the frame figures."""
    dec = {k: video_eval.clip_decisions(r["p"], r["confident"]) for k, r in replays.items()}
    out = {"right_by_rule": {rule: int(sum(d[rule] == clips[k]["label"] for k, d in dec.items()))
                             for rule in video_eval.CLIP_RULES}}
    per_class: dict = {}
    for k, d in dec.items():
        lab = clips[k]["label"]
        per_class.setdefault(lab, [0, 0])
        per_class[lab][0] += d["mean_probability"] == lab
        per_class[lab][1] += 1
    out["per_class"] = {c: f"{a}/{n}" for c, (a, n) in sorted(per_class.items())}
    out["decided"] = {clips[k]["clip"]: d["mean_probability"] for k, d in sorted(dec.items())}
    f = V.judge(replays, clips)["frame"]
    out["frame"] = {k: f[k] for k in ("accuracy", "ece", "confident_share", "accuracy_when_confident")}
    return out


def on_stills(s: Setup, prof: dict) -> dict:
    """FER+ valid accuracy and recall per class if ``prof`` applied to stills (it does not)."""
    p = PoolingParams.from_json({"profiles": [dict(prof, min_frames={})]}).pool(s.fer_per)
    pred = p.argmax(1)
    return {"accuracy": round(float((pred == s.fer_y).mean()), 3),
            "recall": {EMOTIONS_7[c]: round(float((pred[s.fer_y == c] == c).mean()), 2) for c in range(7)}}


def nested_share(s: Setup, vs: dict) -> dict:
    """Per held-out actor, the share that wins most clips by leave one actor out on the
    other actors (ties: the lower summed clip NLL), then that actor's clips replayed."""
    fused, chosen = {}, {}
    for a in np.unique(vs["subject"]):
        held = vs["subject"] == a
        tr = V.subset(vs, ~held)
        inner = {}
        for x in SHARES:
            reps, _, _ = loao(s, tr, fitter(x, RUNNING))
            right = sum(video_eval.clip_decision(r["p"])[0] == tr["clips"][k]["label"] for k, r in reps.items())
            nll = sum(-np.log(np.clip(r["p"][:, EMOTIONS_7.index(tr["clips"][k]["label"])], 1e-12, 1)).mean()
                      for k, r in reps.items())
            inner[x] = (int(right), round(float(nll), 2))
        best = max(SHARES, key=lambda x: (inner[x][0], -inner[x][1]))
        chosen[str(a)] = {"inner (clips right, NLL)": {str(x): v for x, v in inner.items()}, "share": best}
        profs = fitter(best, RUNNING)(s.fer_per, s.fer_y, tr, MEMBERS, s.temps, s.image_profile)
        ks = sorted({int(k) for k in vs["clip"][held]})
        fused.update(zip(ks, V.replay_clips([vs["clips"][k] for k in ks], profs + [s.image_profile]).values()))
    return {"chosen": chosen, "fused": scores(fused, vs["clips"])}


def margin_outputs(video_runs, cache) -> tuple[dict, dict]:
    """Per clip (run folder name), image-cnn's probabilities (frames, margins, 7) on
    offline landmarks; and FER+ valid and CPU figures of the margin averages."""
    import csv

    from video_image_path import landmarks_of

    from emotion_perception.classifiers.image_cnn import load
    from emotion_perception.face_crop import aligned_crop
    from emotion_perception.training import ferplus

    cnn = load()
    out = {}
    for run in video_runs:
        labels = json.loads((pathlib.Path(run) / "metrics.json").read_text())["labels"]
        with open(labels, newline="") as f:
            for row in csv.DictReader(f):
                path = pathlib.Path(labels).parent / (row.get("path") or row["clip"])
                frames, lms = landmarks_of(path, cache)
                arr = np.full((len(frames), len(MARGINS), 7), np.nan)
                for i, (rgb, lm) in enumerate(zip(frames, lms)):
                    if np.all(np.isfinite(lm)):
                        for j, m in enumerate(MARGINS):
                            arr[i, j] = cnn.classify_crop(aligned_crop(rgb, lm, 48, m))
                out[path.stem] = arr
    split = ferplus.load_split(pathlib.Path(D.default_data_dir()) / "ferplus", "valid")
    faces = ferplus.mediapipe_faces(split, progress=False)
    maj = ferplus.majority_labels(split["votes"])
    rows, probs = [], []
    for i in np.flatnonzero(faces["found"] & (maj >= 0)):
        try:  # the faces train fused scores (a face under 12 px has no crop)
            probs.append([cnn.classify_crop(aligned_crop(split["image"][i], faces["landmarks"][i], 48, m))
                          for m in MARGINS])
        except ValueError:
            continue
        rows.append(i)
    probs = np.array(probs)
    y = maj[rows]
    from sklearn.metrics import f1_score

    fer = {}
    for name, idx in margin_sets().items():
        pr = probs[:, idx].mean(1).argmax(1)
        fer[name] = {"accuracy": round(float((pr == y).mean()), 4),
                     "macro_f1": round(float(f1_score(y, pr, average="macro")), 4)}
    # CPU per face, one LiteRT thread: crop + model for each margin, the FER+ faces 4x upscaled
    big = [(np.repeat(np.repeat(split["image"][i], 4, 0), 4, 1), faces["landmarks"][i]) for i in rows[:300]]
    cpu = {}
    for name, idx in margin_sets().items():
        ts = []
        for img, lm in big:
            t0 = time.perf_counter()
            np.mean([cnn.classify_crop(aligned_crop(img, lm, 48, MARGINS[j])) for j in idx], 0)
            ts.append(time.perf_counter() - t0)
        cpu[name] = round(1e3 * float(np.median(ts)), 3)
    return out, {"ferplus_valid": fer, "n_ferplus_valid": len(rows), "cpu_ms_per_face_median": cpu}


def margin_sets() -> dict:
    return {"0.05 (shipped)": [1], "0.0+0.05": [0, 1], "0.05+0.1": [1, 2], "0.0+0.05+0.1": [0, 1, 2]}


def with_image_outputs(arrays: dict, idx: list):
    """A ``video_eval.load_run`` that replaces the main face's image estimate by the mean over ``idx`` margins."""
    from emotion_perception.run_output import main_face

    original = video_eval.load_run

    def load_run(folder):
        recs = original(folder)
        arr = arrays[pathlib.Path(folder).name]
        for r in recs:
            face = main_face(r)
            e = (face or {}).get("emotions", {}).get("image") if face else None
            if e is None or r["frame"] >= len(arr) or not np.all(np.isfinite(arr[r["frame"], idx])):
                continue
            e["probabilities"] = dict(zip(EMOTIONS_7, map(float, arr[r["frame"], idx].mean(0))))
        return recs
    return original, load_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", nargs="+", required=True, help="evaluate-video output folders")
    ap.add_argument("--data", default=str(D.default_data_dir()))
    ap.add_argument("--margins", action="store_true", help="also the crop-margin averaging (MediaPipe on every frame)")
    ap.add_argument("--cache", default=None, help="folder for the clips' landmarks (video_image_path.py's cache)")
    ap.add_argument("--output", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    s = Setup(a.data)
    vs = V.video_set(a.video, MEMBERS)
    res: dict = {"clips": len(vs["clips"]), "frames": int(len(vs["y"]))}
    fused, alone, _ = loao(s, vs)
    res["shipped_method"] = {"fused": scores(fused, vs["clips"]), "image_profile_alone": scores(alone, vs["clips"])}
    res["video_share"] = {}
    for x in SHARES:
        fused, _, fits = loao(s, vs, fitter(x, RUNNING))
        whole = fitter(x, RUNNING)(s.fer_per, s.fer_y, vs, MEMBERS, s.temps, s.image_profile)[0]
        res["video_share"][str(x)] = {"fused": scores(fused, vs["clips"]),
                                      "fit_on_all_clips": {"weight": {m: round(whole["weight"][m], 2) for m in RUNNING},
                                                           "bias": [round(b, 1) for b in whole["bias"]]},
                                      "if_applied_to_ferplus_valid_stills": on_stills(s, whole)}
    res["video_share_nested"] = nested_share(s, vs)
    fused, _, _ = loao(s, vs, fitter(V.VIDEO_SHARE, RUNNING, balanced=True))
    whole = fitter(V.VIDEO_SHARE, RUNNING, balanced=True)(s.fer_per, s.fer_y, vs, MEMBERS, s.temps, s.image_profile)[0]
    res["class_balanced_video_rows"] = {"fused": scores(fused, vs["clips"]),
                                        "if_applied_to_ferplus_valid_stills": on_stills(s, whole)}
    res["conditional_video_term"] = {}
    for x in SHARES[1:]:
        fused, _, _ = loao(s, vs, conditional_fitter(x))
        whole = conditional_fitter(x)(s.fer_per, s.fer_y, vs, MEMBERS, s.temps, s.image_profile)[0]
        res["conditional_video_term"][str(x)] = {
            "fused": scores(fused, vs["clips"]),
            "fit_on_all_clips": {"weight": {m: round(whole["weight"][m], 2) for m in RUNNING},
                                 "bias": [round(b, 1) for b in whole["bias"]]},
            "if_applied_to_ferplus_valid_stills": on_stills(s, whole)}
    if a.margins:
        arrays, figures = margin_outputs(a.video, pathlib.Path(a.cache) if a.cache else None)
        res["image_margins"] = dict(figures, clips={})
        for name, idx in margin_sets().items():
            original, patched = with_image_outputs(arrays, idx)
            video_eval.load_run = patched
            try:
                vm = V.video_set(a.video, MEMBERS)
            finally:
                video_eval.load_run = original
            fused, alone, _ = loao(s, vm)
            res["image_margins"]["clips"][name] = {"fused": scores(fused, vm["clips"]),
                                                   "image_profile_alone": scores(alone, vm["clips"])}
    text = json.dumps(res, indent=1)
    print(text)
    if a.output:
        pathlib.Path(a.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
