"""What ``emotion-perception run`` writes: JSON lines, summary, annotated video, timeline.

Kept apart from :mod:`emotion_perception.offline` (which only moves frames through the
nodes) so the writers can be used on results from any source. No rclpy here.
"""

from __future__ import annotations

import collections
import json
import pathlib

import numpy as np

FRAMES_FILE = "frames.jsonl"
SUMMARY_FILE = "summary.json"
VIDEO_FILE = "annotated.mp4"
TIMELINE_FILE = "timeline.png"
OUTPUT_FILES = (FRAMES_FILE, SUMMARY_FILE, VIDEO_FILE, TIMELINE_FILE)

# Landmark index loops of MediaPipe's face mesh (face oval, lips, eyes) for drawing.
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
RIGHT_IRIS, LEFT_IRIS = 468, 473
EYE_STATES = ("open", "closed", "narrowed", "wide")
MOUTH_STATES = ("closed", "open")
#: Length of the drawn gaze arrow, as a fraction of the face box width.
GAZE_ARROW_SCALE = 1.0

EMOTION_COLOURS_BGR = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (40, 160, 255), "unknown": (128, 128, 128),
}


def json_default(o):
    """JSON for numpy scalars and arrays (message fields may come as numpy types)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def best_estimate(face: dict) -> dict | None:
    """The fused estimate of a face, else the most confident single model's."""
    if face.get("fused"):
        return face["fused"]
    ems = [e for e in face.get("emotions", {}).values() if e]
    return max(ems, key=lambda e: e["confidence"] or 0.0) if ems else None


def probabilities_7(estimate: dict) -> np.ndarray | None:
    """An estimate's probabilities, as ``frames.jsonl`` records them, mapped onto the
    7 classes (:func:`fusion.to_7`); None where it carries none."""
    from .fusion import to_7

    probs = estimate.get("probabilities") or {}
    if not probs or any(v is None for v in probs.values()):
        return None
    return to_7(list(probs), list(probs.values()))


def clip_decision(p) -> tuple[str | None, np.ndarray | None]:
    """A clip's label under the documented rule (argmax of the mean of its frames'
    7-class probabilities; :mod:`video_eval` says why this rule) and that mean;
    (None, None) without estimates."""
    from .types import EMOTIONS_7

    if p is None or not len(p):
        return None, None
    mean = np.asarray(p, np.float64).mean(0)
    return EMOTIONS_7[int(np.argmax(mean))], mean


def annotate(rgb: np.ndarray, result) -> np.ndarray:
    """A BGR copy of ``rgb`` with mesh, box, label, gaze arrow and eye/mouth states drawn."""
    import cv2

    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    thick = max(1, round(min(h, w) / 360))
    font = 0.45 * max(1.0, min(h, w) / 360)
    for fid, face in sorted(result.faces.items()):
        mesh = face.get("mesh")
        est = best_estimate(face)
        colour = EMOTION_COLOURS_BGR.get(est["label"], (255, 255, 255)) if est else (255, 255, 255)
        if mesh is None:
            continue
        pts = mesh["landmarks_px"]
        ipts = np.round(pts).astype(np.int32)
        inside = (ipts[:, 0] >= 0) & (ipts[:, 0] < w) & (ipts[:, 1] >= 0) & (ipts[:, 1] < h)
        img[ipts[inside, 1], ipts[inside, 0]] = (180, 230, 180)
        for loop in (FACE_OVAL, LIPS, RIGHT_EYE, LEFT_EYE):
            cv2.polylines(img, [ipts[loop]], True, (120, 220, 120), 1, cv2.LINE_AA)
        x, y, bw, bh = mesh["bbox"]
        cv2.rectangle(img, (x, y), (x + bw, y + bh), colour, thick)
        lines = []
        if est:
            lines.append(f"{fid} {est['label']} {est['confidence']:.2f}" + ("" if est["confident"] else " ?"))
        else:
            lines.append(fid)
        att = face.get("attention")
        if att:
            try:
                le = EYE_STATES[att["left_eye_state"]]
                re_ = EYE_STATES[att["right_eye_state"]]
                mo = MOUTH_STATES[att["mouth_state"]]
                lines.append(f"eyes L:{le} R:{re_} mouth:{mo}")
                flags = [k for k in ("talking", "drowsy", "attentive") if att.get(k)]
                lines.append(f"look {att['looking_at_camera'] or 0:.2f} " + " ".join(flags))
            except (KeyError, IndexError, TypeError):
                pass
            g = att.get("gaze_direction") or {}
            if len(pts) > LEFT_IRIS and g.get("x") is not None and g.get("y") is not None:
                start = (pts[RIGHT_IRIS] + pts[LEFT_IRIS]) / 2.0
                end = start + np.array([g["x"], g["y"]]) * bw * GAZE_ARROW_SCALE
                cv2.arrowedLine(img, tuple(int(v) for v in start), tuple(int(v) for v in end), (0, 0, 255),
                                thick, cv2.LINE_AA, tipLength=0.2)
        line_h = int(18 * font / 0.45)
        ty = max(line_h, y - 4 - line_h * (len(lines) - 1))
        for i, text in enumerate(lines):
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            org = (max(0, x), ty + i * line_h)
            cv2.rectangle(img, (org[0] - 1, org[1] - th - 3), (org[0] + tw + 2, org[1] + base), (0, 0, 0), -1)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA)
    return img


class RunWriter:
    """Writes every output of a run into one folder as results come in.

    Args:
        out_dir: created if missing.
        fps: frame rate of the annotated video.
        video: write the annotated video (needs each frame's RGB).
    """

    def __init__(self, out_dir: pathlib.Path, fps: float, video: bool = True):
        self.out_dir = pathlib.Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fps = fps or 25.0
        self.video = video
        self._jsonl = open(self.out_dir / FRAMES_FILE, "w")
        self._writer = None
        self.records: list[dict] = []

    def add(self, result, rgb: np.ndarray | None = None) -> dict:
        rec = result.record()
        self._jsonl.write(json.dumps(rec, default=json_default) + "\n")
        self.records.append(rec)
        if self.video and rgb is not None:
            import cv2

            frame = annotate(rgb, result)
            if self._writer is None:
                h, w = frame.shape[:2]
                self._size = (w, h)
                self._writer = cv2.VideoWriter(str(self.out_dir / VIDEO_FILE), cv2.VideoWriter_fourcc(*"mp4v"),
                                               self.fps, (w, h))
                if not self._writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write {self.out_dir / VIDEO_FILE} (mp4v)")
            if (frame.shape[1], frame.shape[0]) != self._size:  # a folder of images of mixed sizes
                frame = cv2.resize(frame, self._size)
            self._writer.write(frame)
        return rec

    def finish(self, info: dict) -> dict:
        """Close the files, write ``summary.json`` and ``timeline.png``; return the summary."""
        self._jsonl.close()
        if self._writer is not None:
            self._writer.release()
        summary = summarise(self.records, info)
        (self.out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
        plot_timeline(self.records, self.out_dir / TIMELINE_FILE, title=str(info.get("input", "")))
        return summary


def summarise(records: list[dict], info: dict) -> dict:
    """Per face and per model: the clip label (:func:`clip_decision`, the rule
    ``evaluate-video`` scores) with its mean probability, the majority of the published
    labels and their counts; mean fused probabilities; output counts."""
    faces: dict[str, dict] = {}
    missing = collections.Counter()
    lat = collections.defaultdict(list)
    for r in records:
        missing.update(r["missing"])
        for k, v in r["latency_ms"].items():
            lat[k].append(v)
        for f in r["faces"]:
            d = faces.setdefault(f["face_id"], {"frames": 0, "first_s": r["time_s"], "last_s": r["time_s"],
                                                "labels": collections.defaultdict(collections.Counter),
                                                "p7": collections.defaultdict(list),
                                                "fused_probs": [], "looking": [], "talking": 0, "drowsy": 0})
            d["frames"] += 1
            d["last_s"] = r["time_s"]
            ests = dict(f["emotions"])
            if f["fused"]:
                ests["fused"] = f["fused"]
                d["fused_probs"].append(f["fused"]["probabilities"])
            for model, e in ests.items():
                d["labels"][model][e["label"]] += 1
                p7 = probabilities_7(e)
                if p7 is not None:
                    d["p7"][model].append(p7)
            a = f.get("attention")
            if a:
                if a.get("looking_at_camera") is not None:
                    d["looking"].append(a["looking_at_camera"])
                d["talking"] += bool(a.get("talking"))
                d["drowsy"] += bool(a.get("drowsy"))
    out_faces = {}
    for fid, d in faces.items():
        mean_probs = {}
        if d["fused_probs"]:
            classes = list(d["fused_probs"][0])
            mean_probs = {c: round(float(np.mean([p.get(c) or 0.0 for p in d["fused_probs"]])), 4) for c in classes}
        decided = {m: clip_decision(p) for m, p in d["p7"].items()}
        out_faces[fid] = {
            "frames": d["frames"], "first_s": d["first_s"], "last_s": d["last_s"],
            "clip_label": {m: lab for m, (lab, _) in decided.items()},
            "clip_label_probability": {m: round(float(mean.max()), 4) for m, (_, mean) in decided.items()},
            "majority": {m: c.most_common(1)[0][0] for m, c in d["labels"].items()},
            "label_counts": {m: dict(c) for m, c in d["labels"].items()},
            "mean_fused_probabilities": mean_probs,
            "mean_looking_at_camera": round(float(np.mean(d["looking"])), 4) if d["looking"] else None,
            "talking_fraction": round(d["talking"] / d["frames"], 4),
            "drowsy_fraction": round(d["drowsy"] / d["frames"], 4),
        }
    return {
        **info,
        "frames": len(records),
        "frames_with_face": sum(1 for r in records if r["faces"]),
        "faces": out_faces,
        "outputs_missing": dict(missing),
        "latency_ms_median": {k: round(float(np.median(v)), 2) for k, v in lat.items()},
    }


def main_face(rec: dict) -> dict | None:
    """The face of a frame with the largest box (the one the timeline follows)."""
    faces = [f for f in rec["faces"]]
    if not faces:
        return None
    return max(faces, key=lambda f: (f["bbox"][2] * f["bbox"][3]) if f.get("bbox") else 0)


def plot_timeline(records: list[dict], path: pathlib.Path, title: str = "") -> None:
    """Fused (or best single-model) probabilities and attention of the main face over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([r["time_s"] for r in records], dtype=float)
    probs: dict[str, list] = {}
    att = {"looking_at_camera": [], "mouth_open_probability": [], "perclos": []}
    source = "fused"
    for i, r in enumerate(records):
        f = main_face(r)
        est = best_estimate(f) if f else None
        if est and not (f and f.get("fused")):
            source = est["model"]
        for c in set(probs) | set(est["probabilities"] if est else ()):
            probs.setdefault(c, [np.nan] * i)
            probs[c].append((est["probabilities"].get(c) if est else None) or np.nan)
        a = (f or {}).get("attention") or {}
        for k in att:
            v = a.get(k)
            att[k].append(np.nan if v is None else float(v))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for c, v in sorted(probs.items()):
        ax1.plot(t, np.asarray(v, dtype=float), label=c,
                 color=np.array(EMOTION_COLOURS_BGR.get(c, (128, 128, 128))[::-1]) / 255.0)
    ax1.set_ylabel(f"P(emotion), {source}")
    ax1.set_ylim(-0.02, 1.05)
    if probs:
        ax1.legend(loc="upper right", fontsize=8, ncol=4)
    for k, v in att.items():
        ax2.plot(t, v, label=k)
    ax2.set_ylim(-0.02, 1.05)
    ax2.set_ylabel("attention")
    ax2.set_xlabel("time (s)")
    ax2.legend(loc="upper right", fontsize=8)
    no_face = np.array([not r["faces"] for r in records])
    for ax in (ax1, ax2):
        if no_face.any() and len(t) > 1:
            ax.fill_between(t, 0, 1, where=no_face, color="0.9", step="mid", label="_no face")
    fig.suptitle(title or "emotion-perception run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
