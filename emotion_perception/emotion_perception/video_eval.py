"""Scoring the pipeline on labelled video (``emotion-perception evaluate-video``).

ROS-free: it reads what ``emotion-perception run`` writes (``frames.jsonl``, one
record per frame with every member's and the fusion's estimate of every face) and
scores it against one label per clip.

**Which face.** Per frame, the face with the largest box (:func:`run_output.main_face`):
the labelled person.

**Clip decision rule.** A model's label for a clip is the argmax of the mean, over the
frames where that model published an estimate of the main face, of its probabilities
mapped onto the 7 classes (:func:`fusion.to_7`). The same rule for every member and for
the fused output, so they are compared on the same frames; a model that published
nothing for a clip has no decision there (counted as wrong, listed under
``no_estimate``). ``run``'s ``summary.json`` (``clip_label``) and ``make demo`` decide
a face's clip label by the same rule (:func:`run_output.clip_decision`). Why the mean
of the probabilities: every frame counts with the probability the model gave it; the
mean of log-probabilities multiplies the frames' estimates as if they were independent
(a face's frames are not, and the fused stream is already smoothed over time), so a few
frames near 0 veto a class; a vote of the ``confident`` frames drops the frames the
model is unsure of, which on subtle faces is most of them. The two others are reported
beside it (``right_by_rule``, :func:`clip_decisions`); on the 16 labelled clips held
out they agree with it (``models/fused.md``, "On video").

**Frame level.** Every frame with an estimate carries its clip's label. Accuracy,
macro-F1, expected calibration error (ECE, top label, 15 bins) and NLL of the
probabilities as published, and the reliability of the ``confident`` flag: the share
of frames flagged and the accuracy among flagged and unflagged frames.

:func:`replay_fusion` feeds the members' recorded estimates through
:class:`fusion.EmotionFusion` (the fusion node's core) with other pooling parameters,
so a fusion can be fitted and judged on recorded runs without running the nodes again.
"""

from __future__ import annotations

import csv
import json
import pathlib

import numpy as np

from .run_output import clip_decision, main_face, probabilities_7
from .types import EMOTIONS_7

#: Model key of the fused output in the scores (the members keep their topic's key:
#: transformer, lstm, frame, image).
FUSED = "fused"


def read_labels(path) -> list[dict]:
    """Rows of a labels CSV: ``path`` (or ``clip``, as the CREMA-D demo clips' file),
    ``label`` and optionally ``subject`` (other columns kept).

    Raises:
        ValueError: a missing column, or a label outside the 7 classes.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if "path" not in r and "clip" in r:
            r["path"] = r["clip"]
    if not rows or "path" not in rows[0] or "label" not in rows[0]:
        raise ValueError(f"{path}: needs the columns path,label (optionally subject)")
    for r in rows:
        r["label"] = r["label"].strip().lower()
        if r["label"] not in EMOTIONS_7:
            raise ValueError(f"{path}: label {r['label']!r} of {r['path']} is not one of {', '.join(EMOTIONS_7)}")
        r.setdefault("subject", "")
    return rows


def read_frames(path) -> list[dict]:
    """The records of a ``frames.jsonl``."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def streams(records: list[dict]) -> dict[str, dict]:
    """Per model, the main face's estimates over the clip.

    Returns:
        {model: {"frame": (F,) int, "stamp_ns": (F,) int, "p": (F, 7) float,
        "confident": (F,) bool, "frames_used": (F,) int, "model": the producing model's name,
        "raw": list of the estimate dicts}}; models with no estimate are absent.
    """
    out: dict[str, dict] = {}
    for rec in records:
        face = main_face(rec)
        if face is None:
            continue
        ests = dict(face.get("emotions") or {})
        if face.get("fused"):
            ests[FUSED] = face["fused"]
        for key, e in ests.items():
            p7 = probabilities_7(e)
            if p7 is None:
                continue
            s = out.setdefault(key, {"frame": [], "stamp_ns": [], "p": [], "confident": [], "model": e["model"],
                                     "frames_used": [], "raw": []})
            s["frame"].append(rec["frame"])
            s["frames_used"].append(int(e.get("frames_used") or 1))
            s["stamp_ns"].append(rec["stamp_ns"])
            s["p"].append(p7)
            s["confident"].append(bool(e["confident"]))
            s["raw"].append(e)
    for s in out.values():
        s["frame"] = np.asarray(s["frame"], int)
        s["stamp_ns"] = np.asarray(s["stamp_ns"], np.int64)
        s["p"] = np.asarray(s["p"], np.float64).reshape(-1, len(EMOTIONS_7))
        s["confident"] = np.asarray(s["confident"], bool)
        s["frames_used"] = np.asarray(s["frames_used"], int)
    return out


#: The clip decision rules reported side by side; the first is the documented one
#: (:func:`clip_decision`), the others are figures beside it (:func:`clip_decisions`).
CLIP_RULES = ("mean_probability", "mean_log_probability", "vote_of_confident_frames")


def clip_decisions(p: np.ndarray, confident: np.ndarray | None = None) -> dict[str, str | None]:
    """The clip's label under each of :data:`CLIP_RULES`: argmax of the mean
    probabilities (the documented rule); argmax of the mean log-probabilities (floored
    at 1e-4: the product of the frames' estimates, as if frames were independent);
    the most frequent top class among the frames flagged ``confident`` (ties to the
    larger mean probability; no flagged frame: the documented rule). All None without
    estimates."""
    label, mean = clip_decision(p)
    if label is None:
        return {r: None for r in CLIP_RULES}
    p = np.asarray(p, np.float64)
    out = {"mean_probability": label,
           "mean_log_probability": EMOTIONS_7[int(np.argmax(np.log(np.clip(p, 1e-4, 1.0)).mean(0)))]}
    conf = np.zeros(len(p), bool) if confident is None else np.asarray(confident, bool)
    if conf.any():
        votes = np.bincount(p[conf].argmax(1), minlength=len(EMOTIONS_7))
        tied = np.flatnonzero(votes == votes.max())
        out["vote_of_confident_frames"] = EMOTIONS_7[int(tied[np.argmax(mean[tied])])]
    else:
        out["vote_of_confident_frames"] = out["mean_probability"]
    return out


def _macro_f1(y_true: list, y_pred: list) -> float:
    from sklearn.metrics import f1_score

    present = sorted(set(y_true))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def _confusion(y_true: list, y_pred: list) -> dict:
    """{true: {predicted: count}} over the 7 classes, rows for the classes present."""
    rows = {}
    for t, p in zip(y_true, y_pred):
        rows.setdefault(t, {c: 0 for c in (*EMOTIONS_7, "none")})[p or "none"] += 1
    order = sorted(rows.items(), key=lambda kv: EMOTIONS_7.index(kv[0]))
    return {t: {c: n for c, n in r.items() if n} for t, r in order}


def frame_scores(p: np.ndarray, confident: np.ndarray, labels: np.ndarray) -> dict:
    """Frame-level figures of one model over frames of many clips (``labels`` the clip label of each frame)."""
    from .training.metrics import expected_calibration_error

    if not len(p):
        return {"n": 0}
    y = np.array([EMOTIONS_7.index(str(c)) for c in labels])
    pred = p.argmax(1)
    right = pred == y
    nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())
    out = {"n": int(len(y)), "accuracy": round(float(right.mean()), 4),
           "macro_f1": round(_macro_f1([EMOTIONS_7[i] for i in y], [EMOTIONS_7[i] for i in pred]), 4),
           "ece": round(expected_calibration_error(p, y), 4), "nll": round(nll, 4),
           "mean_top_probability": round(float(p.max(1).mean()), 4),
           "confident_share": round(float(confident.mean()), 4),
           "accuracy_when_confident": round(float(right[confident].mean()), 4) if confident.any() else None,
           "accuracy_when_not_confident": round(float(right[~confident].mean()), 4) if (~confident).any() else None}
    return out


def score_clips(clips: list[dict]) -> dict:
    """Scores of every model over labelled clips.

    Args:
        clips: [{"name", "label", "subject", "streams": :func:`streams` of its run}].

    Returns:
        {"models": {model: {"clip": {...}, "frame": {...}}}, "clips": [per-clip rows]}.
    """
    models = sorted({m for c in clips for m in c["streams"]}, key=lambda m: (m == FUSED, m))
    result: dict = {"clip_rule": "argmax of the mean 7-class probabilities over the frames with an estimate "
                                 "of the main (largest) face", "n_clips": len(clips), "models": {}}
    rows = []
    by_rule: dict = {m: [] for m in models}
    for c in clips:
        row = {"clip": c["name"], "label": c["label"], "subject": c.get("subject", "")}
        for m in models:
            s = c["streams"].get(m)
            lab, mean = clip_decision(s["p"] if s else None)
            row[m] = lab
            row[f"{m}_p_true"] = None if mean is None else round(float(mean[EMOTIONS_7.index(c["label"])]), 4)
            row[f"{m}_frames"] = 0 if s is None else int(len(s["p"]))
            by_rule[m].append(clip_decisions(s["p"] if s else None, s["confident"] if s else None))
        rows.append(row)
    for m in models:
        y_true = [r["label"] for r in rows]
        y_pred = [r[m] for r in rows]
        right = sum(t == p for t, p in zip(y_true, y_pred))
        ps = [c["streams"][m] for c in clips if m in c["streams"]]
        labs = np.concatenate([[c["label"]] * len(c["streams"][m]["p"]) for c in clips if m in c["streams"]]) \
            if ps else np.array([])
        result["models"][m] = {
            "model_name": ps[0]["model"] if ps else m,
            "clip": {"right": int(right), "n": len(rows), "accuracy": round(right / max(len(rows), 1), 4),
                     "macro_f1": round(_macro_f1(y_true, [p or "none" for p in y_pred]), 4),
                     "no_estimate": sum(p is None for p in y_pred), "confusion": _confusion(y_true, y_pred),
                     "right_by_rule": {r: int(sum(t == d[r] for t, d in zip(y_true, by_rule[m]))) for r in CLIP_RULES}},
            "frame": frame_scores(np.concatenate([s["p"] for s in ps]) if ps else np.zeros((0, 7)),
                                  np.concatenate([s["confident"] for s in ps]) if ps else np.zeros(0, bool), labs),
        }
    result["clips"] = rows
    return result


def table(result: dict) -> str:
    """A plain-text table of the scores (one line per model)."""
    lines = [f"{'model':<14} {'clips right':>11} {'clip acc':>8} {'clip F1':>7} {'frame acc':>9} "
             f"{'frame F1':>8} {'ECE':>6} {'confident':>9} {'acc|conf':>8}"]
    for m, r in result["models"].items():
        c, f = r["clip"], r["frame"]
        acc_c = f.get("accuracy_when_confident")
        lines.append(f"{m:<14} {c['right']:>5} of {c['n']:<3} {c['accuracy']:>8.3f} {c['macro_f1']:>7.3f} "
                     f"{f.get('accuracy', float('nan')):>9.3f} {f.get('macro_f1', float('nan')):>8.3f} "
                     f"{f.get('ece', float('nan')):>6.3f} {f.get('confident_share', float('nan')):>9.3f} "
                     f"{'-' if acc_c is None else f'{acc_c:.3f}':>8}")
    return "\n".join(lines)


def replay_fusion(records: list[dict], params, **fusion_kwargs) -> dict:
    """The fused stream of the main face as :class:`fusion.EmotionFusion` with ``params``
    would have published it from the members' recorded estimates (each frame: the
    members' estimates of that frame added with its stamp, then fused at that stamp,
    as the fusion node does once every running member delivered).

    Returns:
        a :func:`streams`-like entry {"frame", "stamp_ns", "p", "confident", "model"}.
    """
    from .fusion import EmotionFusion
    from .types import EmotionEstimate

    fusion = EmotionFusion(params, **fusion_kwargs)
    frames, stamps, ps, conf = [], [], [], []
    for rec in records:
        face = main_face(rec)
        if face is None:
            continue
        added = False
        for e in (face.get("emotions") or {}).values():
            probs = e.get("probabilities") or {}
            if not probs or any(v is None for v in probs.values()):
                continue
            fusion.add(EmotionEstimate(face_id="main", class_names=tuple(probs), probabilities=np.array(
                list(probs.values()), np.float32), model=e["model"], frames_used=int(e.get("frames_used") or 1),
                confident=bool(e["confident"])), rec["stamp_ns"])
            added = True
        if not added:
            continue
        est = fusion.fuse("main", rec["stamp_ns"])
        if est is None:
            continue
        frames.append(rec["frame"])
        stamps.append(rec["stamp_ns"])
        ps.append(np.asarray(est.probabilities, np.float64))
        conf.append(bool(est.confident))
    return {"frame": np.asarray(frames, int), "stamp_ns": np.asarray(stamps, np.int64),
            "p": np.asarray(ps, np.float64).reshape(-1, len(EMOTIONS_7)), "confident": np.asarray(conf, bool),
            "model": FUSED}


def load_run(folder) -> list[dict]:
    """Records of one clip's run folder (``frames.jsonl``)."""
    from .run_output import FRAMES_FILE

    return read_frames(pathlib.Path(folder) / FRAMES_FILE)
