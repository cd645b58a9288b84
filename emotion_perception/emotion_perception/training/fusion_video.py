"""The stream profiles of the fusion: the image profile's members pooled with weights
fitted on the members' recorded outputs on labelled video (``emotion-perception
evaluate-video`` runs) together with FER+ valid, applied only to streams; and a
warm-up profile for a stream's first frames.

**Where it applies.** The profile has ``min_frames`` {lstm: :data:`STREAM_MIN_FRAMES`}:
it is chosen only when the LSTM's estimate rests on at least that many frames of the
face (a stream, after the LSTM's own warm-up), never for a still photo (whose estimates
carry no frame count), so FER+ valid and every still keep the image profile.

**Fitting.** Video frames: every frame of a labelled clip where every member published
an estimate of the main face and the LSTM had seen :data:`STREAM_MIN_FRAMES` frames,
labelled with its clip's label, each clip weighted equally (a long clip does not outvote
a short one). Objective: the mean NLL on FER+ valid and the mean NLL on the video frames,
with weights 1 - :data:`VIDEO_SHARE` and :data:`VIDEO_SHARE` (FER+ keeps the class
biases and weights from following a handful of clips alone); member temperatures are
the image profile's (fitted on FER+ valid); weights >= 0 and 7 class biases, L-BFGS.

**Warm-up.** Until the LSTM rests on :data:`STREAM_MIN_FRAMES` frames, a stream gets
the image profile's pooling (the image model alone) scaled by one factor fitted on the
video frames (:func:`fit_warmup_profile`, ``min_frames`` {lstm: 1}): the image model's
temperature was fitted on FER+ stills and is far too sharp for video.

**Judging.** Leave one actor out: for each actor, the profiles fitted without that
actor's clips, then that actor's clips replayed through :class:`fusion.EmotionFusion`
(the fusion node's core, node defaults) with the deployed profiles (stream, warm-up and
image profiles), against the same replay with today's image profile alone; clip label by
:mod:`emotion_perception.video_eval`'s rule. Frame figures (accuracy, ECE, accuracy when
``confident``) come from the same held-out replays. Shipped where it gets more clips
right than the image profile alone. A per-person neutral baseline is measured on the
same held-out replays (:func:`neutral_baseline`), not applied.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from ..fusion import PoolingParams
from ..types import EMOTIONS_7

#: Share of the objective given to the video frames (fixed before any clip was scored).
VIDEO_SHARE = 0.5
#: Frames the LSTM's estimate must rest on for the stream profile (the lstm node's
#: ``min_frames``, after which its estimate is confident).
STREAM_MIN_FRAMES = 8
#: Scale the fitted profile to calibrate it on the video frames (:func:`video_scale`).
CALIBRATE_ON_VIDEO = True
#: Names of the profiles in fusion.json.
STREAM_PROFILE = "video_stream"
WARMUP_PROFILE = "video_warmup"


def video_set(run_dirs, members) -> dict:
    """The frames of every clip of ``run_dirs`` (``evaluate-video --output`` folders)
    where each of ``members`` (model names) has an estimate of the main face and the
    LSTM (when a member) rests on :data:`STREAM_MIN_FRAMES` frames.

    Returns:
        {"per": {member: (F, 7)}, "y": (F,) class index, "clip": (F,) clip index,
        "subject": (F,) str, "row_weight": (F,), "clips": [{"clip", "label", "subject",
        "records"}]}.
    """
    from .. import video_eval

    per = {m: [] for m in members}
    y, clip_idx, subj, clips = [], [], [], []
    for d in run_dirs:
        d = pathlib.Path(d)
        meta = json.loads((d / "metrics.json").read_text())
        for row in meta["clips"]:
            records = video_eval.load_run(d / "clips" / pathlib.Path(row["clip"]).stem)
            st = video_eval.streams(records)
            by_model = {s["model"]: s for k, s in st.items() if k != video_eval.FUSED}
            if not all(m in by_model for m in members):
                continue
            sets = []
            for m in members:
                ok = by_model[m]["frames_used"] >= (STREAM_MIN_FRAMES if m == "lstm" else 1)
                sets.append(set(by_model[m]["frame"][ok].tolist()))
            frames = sorted(set.intersection(*sets))
            if not frames:
                continue
            k = len(clips)
            clips.append({"clip": row["clip"], "label": row["label"],
                          "subject": row.get("subject") or row["clip"], "records": records})
            for m in members:
                pos = {f: i for i, f in enumerate(by_model[m]["frame"].tolist())}
                per[m].append(by_model[m]["p"][[pos[f] for f in frames]])
            y += [EMOTIONS_7.index(row["label"])] * len(frames)
            clip_idx += [k] * len(frames)
            subj += [clips[-1]["subject"]] * len(frames)
    clip_idx = np.asarray(clip_idx, int)
    counts = np.bincount(clip_idx, minlength=len(clips)) if len(clips) else np.zeros(0)
    return {"per": {m: np.concatenate(v) if v else np.zeros((0, 7)) for m, v in per.items()},
            "y": np.asarray(y, int), "clip": clip_idx, "subject": np.asarray(subj), "clips": clips,
            "row_weight": (1.0 / counts[clip_idx]) if len(clips) else np.zeros(0)}


def subset(vs: dict, mask: np.ndarray) -> dict:
    return {"per": {m: p[mask] for m, p in vs["per"].items()}, "y": vs["y"][mask], "clip": vs["clip"][mask],
            "subject": vs["subject"][mask], "clips": vs["clips"], "row_weight": vs["row_weight"][mask]}


def joint_sets(fer_per: dict, fer_y: np.ndarray, vs: dict) -> list:
    """The (per, y, row_weight) sets of the joint objective (see the module doc)."""
    sets = [(fer_per, fer_y, np.full(len(fer_y), (1 - VIDEO_SHARE) / max(len(fer_y), 1)))]
    if len(vs["y"]):
        sets.append((vs["per"], vs["y"], VIDEO_SHARE * vs["row_weight"] / vs["row_weight"].sum()))
    return sets


def video_scale(prof: dict, vs: dict) -> float:
    """The factor on the profile's weights and bias (one temperature of the pooled
    output) that minimises the clip-weighted NLL of the video frames."""
    from scipy.optimize import minimize_scalar

    z0 = np.asarray(prof["bias"], float) + sum(prof["weight"][m] * np.log(np.clip(p, 1e-4, 1)) / prof["temperature"][m]
                                               for m, p in vs["per"].items())
    rw = vs["row_weight"] / vs["row_weight"].sum()

    def nll(log_s):
        z = z0 * np.exp(log_s)
        z = z - z.max(1, keepdims=True)
        return -(rw * (z[np.arange(len(vs["y"])), vs["y"]] - np.log(np.exp(z).sum(1)))).sum()

    return float(np.exp(minimize_scalar(nll, bounds=(-2.5, 2.5), method="bounded").x))


def fit_profile(fer_per, fer_y, vs, members, temps) -> dict:
    """The stream profile (fusion.json layout): weights and bias fitted on FER+ valid and
    ``vs`` together, then scaled by :func:`video_scale` (calibrated on the video frames)."""
    from .fusion import _fit_pooling

    w, b = _fit_pooling(joint_sets(fer_per, fer_y, vs), members, temps)
    prof = {"name": STREAM_PROFILE, "members": list(members), "temperature": dict(temps), "weight": w, "bias": b,
            "requires": ["image-cnn", "lstm"], "min_frames": {"lstm": STREAM_MIN_FRAMES}}
    s = video_scale(prof, vs) if CALIBRATE_ON_VIDEO else 1.0
    prof["video_scale"] = round(s, 5)
    prof["weight"] = {m: round(v * s, 5) for m, v in w.items()}
    prof["bias"] = [round(v * s, 5) for v in b]
    return prof


def fit_warmup_profile(image_profile: dict, vs: dict) -> dict:
    """The warm-up profile: the image profile's pooling (the image model alone) scaled by
    :func:`video_scale` on the video frames, for a stream's first frames, before the
    LSTM rests on :data:`STREAM_MIN_FRAMES` (``min_frames`` {lstm: 1}: never a still)."""
    s = video_scale(image_profile, vs)
    return dict(image_profile, name=WARMUP_PROFILE, requires=["image-cnn", "lstm"], min_frames={"lstm": 1},
                video_scale=round(s, 5), weight={m: round(w * s, 5) for m, w in image_profile["weight"].items()},
                bias=[round(b * s, 5) for b in image_profile["bias"]])


def stream_profiles(fer_per, fer_y, vs, members, temps, image_profile: dict) -> list:
    """[stream profile, warm-up profile] fitted on FER+ valid and ``vs``."""
    return [fit_profile(fer_per, fer_y, vs, members, temps), fit_warmup_profile(image_profile, vs)]


def replay_clips(clips: list, profiles: list, **fusion_kwargs) -> dict:
    """Each clip replayed through EmotionFusion with ``profiles`` (fusion.json layout):
    {clip index: :func:`video_eval.replay_fusion` stream}."""
    from .. import video_eval

    params = PoolingParams.from_json({"profiles": profiles})
    return {k: video_eval.replay_fusion(c["records"], params, **fusion_kwargs) for k, c in enumerate(clips)}


def judge(replays: dict, clips: list) -> dict:
    """Clip and frame figures of replayed clips (the evaluate-video rules)."""
    from .. import video_eval

    dec = {k: video_eval.clip_decision(r["p"])[0] for k, r in replays.items()}
    p = np.concatenate([r["p"] for r in replays.values()])
    conf = np.concatenate([r["confident"] for r in replays.values()])
    labels = np.concatenate([[clips[k]["label"]] * len(r["p"]) for k, r in replays.items()])
    y_true = [clips[k]["label"] for k in dec]
    return {"right": int(sum(dec[k] == clips[k]["label"] for k in dec)), "n": len(dec),
            "macro_f1": round(video_eval._macro_f1(y_true, [dec[k] or "none" for k in dec]), 4),
            "clips": [{"clip": clips[k]["clip"], "label": clips[k]["label"], "decided": dec[k]} for k in sorted(dec)],
            "frame": video_eval.frame_scores(p, conf, labels)}


def leave_one_actor_out(fer_per, fer_y, vs, members, temps, image_profile: dict, **fusion_kwargs) -> dict:
    """The deployed fusion (stream and warm-up profiles fitted without the actor + the
    image profile) and the image profile alone, replayed on each actor's clips."""
    fused, alone, weights = {}, {}, {}
    for s in np.unique(vs["subject"]):
        held = vs["subject"] == s
        profs = stream_profiles(fer_per, fer_y, subset(vs, ~held), members, temps, image_profile)
        weights[str(s)] = {p["name"]: p["weight"] for p in profs}
        ks = sorted({int(k) for k in vs["clip"][held]})
        part = [vs["clips"][k] for k in ks]
        for k, r in zip(ks, replay_clips(part, profs + [image_profile], **fusion_kwargs).values()):
            fused[k] = r
        for k, r in zip(ks, replay_clips(part, [image_profile], **fusion_kwargs).values()):
            alone[k] = r
    return {"fused": judge(fused, vs["clips"]), "image_profile_alone": judge(alone, vs["clips"]),
            "weights_per_actor_left_out": weights,
            "neutral_baseline": {"fused": neutral_baseline({k: r["p"] for k, r in fused.items()}, vs["clips"]),
                                 "image_profile_alone": neutral_baseline({k: r["p"] for k, r in alone.items()},
                                                                         vs["clips"])}}


#: Strengths of the per-person neutral baseline measured (1: the whole offset).
BASELINE_STRENGTHS = (0.5, 1.0)


def neutral_baseline(p_by_clip: dict, clips: list) -> dict:
    """A per-person baseline on clip outputs, measured: each clip's log-probabilities
    moved by ``strength * (population mean - the person's mean over their other
    clips)``, the population being the other actors' clips; clips of a person with no
    other clip are left out. Returns {strength: {"clips", "right_raw", "right_baseline"}}."""
    from .. import video_eval

    def mean_log(k):
        return np.log(np.clip(p_by_clip[k], 1e-4, 1)).mean(0)

    out = {}
    for strength in BASELINE_STRENGTHS:
        n = raw = moved = 0
        for k, c in enumerate(clips):
            if k not in p_by_clip:
                continue
            own = [j for j, d in enumerate(clips) if j != k and d["subject"] == c["subject"] and j in p_by_clip]
            pop = [j for j, d in enumerate(clips) if d["subject"] != c["subject"] and j in p_by_clip]
            if not own or not pop:
                continue
            shift = np.mean([mean_log(j) for j in pop], 0) - np.mean([mean_log(j) for j in own], 0)
            z = np.log(np.clip(p_by_clip[k], 1e-4, 1)) + strength * shift
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            n += 1
            raw += video_eval.clip_decision(p_by_clip[k])[0] == c["label"]
            moved += video_eval.clip_decision(p)[0] == c["label"]
        out[str(strength)] = {"clips": n, "right_raw": int(raw), "right_baseline": int(moved)}
    return out
