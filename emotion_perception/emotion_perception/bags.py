"""rosbag2 tools: write a bag from a video, replay a bag through the nodes and score it.

Bags are read and written with ``rosbags`` (no ROS install needed); they open in
``ros2 bag`` on Jazzy and Kilted (metadata version 8, sqlite3 or mcap). Replay
sends the bag's own messages (raw ``Image`` or ``CompressedImage``, byte for byte,
with their recorded stamps) into the running nodes through
:class:`~emotion_perception.offline.OfflinePipeline`.

Labels file (``--labels``), CSV with a header, one of two layouts:

* time spans: ``start_s,end_s,label`` -- seconds from the bag's first image
  (recording time, so loops and stamp jumps do not matter); frames outside every span
  are not scored;
* clips: ``clip,label`` -- the row whose ``clip`` equals the bag's directory name (or
  the video it was made from, with or without extension) labels the whole bag
  (``labels.csv`` of the demo clips has this layout).
"""

from __future__ import annotations

import collections
import csv
import json
import pathlib
import time

import numpy as np

DEFAULT_TOPIC = "/camera/image_raw"
STORAGES = ("sqlite3", "mcap")
#: JPEG quality of CompressedImage bags.
JPEG_QUALITY = 90
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CONFUSION_PNG = "confusion.png"
LATENCY_PNG = "latency.png"
NO_FACE = "(none)"  # a labelled frame without any estimate (no face, or no model output)


# ---------------------------------------------------------------- writing

def video_to_bag(video, bag, compressed: bool = False, storage: str = "sqlite3", topic: str = DEFAULT_TOPIC,
                 frame_id: str = "camera", max_frames: int | None = None, start_ns: int | None = None,
                 loops: int = 1) -> dict:
    """Write the frames of ``video`` as ``sensor_msgs/Image`` (rgb8) or ``CompressedImage`` (JPEG).

    Stamps and recording times are ``start_ns`` (default: now) plus the video's own
    frame times. With ``loops`` > 1 the video is written again after itself with the
    same stamps while the recording time goes on, like a looping player.

    Returns:
        {"frames", "topic", "msgtype", "storage", "duration_s"}.

    Raises:
        emotion_perception.sources.SourceError: the video cannot be read.
        FileExistsError: ``bag`` exists (rosbags never overwrites).
        ValueError: an unknown storage.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    from .sources import VideoSource, bag_typestore

    if storage not in STORAGES:
        raise ValueError(f"storage {storage!r}: choose one of {', '.join(STORAGES)}")
    bag = pathlib.Path(bag)
    if bag.exists():
        raise FileExistsError(f"{bag} exists; rosbags does not overwrite bags")
    ts = bag_typestore()
    Image = ts.types["sensor_msgs/msg/Image"]
    CompressedImage = ts.types["sensor_msgs/msg/CompressedImage"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    msgtype = (CompressedImage if compressed else Image).__msgtype__
    start_ns = time.time_ns() if start_ns is None else start_ns
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    n = 0
    last_log = start_ns
    with Writer(bag, version=8, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=ts)
        log_offset = 0
        for loop in range(loops):
            src = VideoSource(pathlib.Path(video), max_frames=max_frames)
            t_last = 0
            for frame in src:
                t = int(round(frame.time_s * 1e9))
                stamp = start_ns + t
                header = Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
                                frame_id=frame_id)
                if compressed:
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    msg = CompressedImage(header=header, format="rgb8; jpeg compressed bgr8",
                                          data=np.frombuffer(buf.tobytes(), dtype=np.uint8))
                else:
                    h, w = frame.rgb.shape[:2]
                    msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                                data=np.ascontiguousarray(frame.rgb).reshape(-1))
                last_log = start_ns + log_offset + t
                writer.write(conn, last_log, ts.serialize_cdr(msg, msgtype))
                t_last = t
                n += 1
            src.close()
            log_offset += t_last + int(1e9 / (src.fps or 25.0))
    return {"frames": n, "topic": topic, "msgtype": msgtype, "storage": storage,
            "duration_s": round((last_log - start_ns) / 1e9, 3)}


# ---------------------------------------------------------------- labels

def read_labels(path, bag_name: str):
    """Labels for a bag: a function time_s -> label or None, and the layout name.

    Raises:
        ValueError: an unknown layout, a bad row, or no row for this bag in a clip file.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    cols = set(rows[0])
    if {"start_s", "end_s", "label"} <= cols:
        spans = []
        for i, r in enumerate(rows, start=2):
            try:
                a, b = float(r["start_s"]), float(r["end_s"])
            except ValueError:
                raise ValueError(f"{path}:{i}: start_s/end_s are not numbers") from None
            if b <= a:
                raise ValueError(f"{path}:{i}: end_s {b} is not after start_s {a}")
            spans.append((a, b, r["label"].strip().lower()))

        def by_time(t):
            for a, b, lab in spans:
                if a <= t < b:
                    return lab
            return None

        return by_time, "spans", spans
    if {"clip", "label"} <= cols:
        names = {bag_name, pathlib.Path(bag_name).stem}
        for r in rows:
            if r["clip"] in names or pathlib.Path(r["clip"]).stem in names:
                lab = r["label"].strip().lower()
                return (lambda t: lab), "clip", [(0.0, float("inf"), lab)]
        raise ValueError(f"{path}: no row with clip {bag_name!r}")
    raise ValueError(f"{path}: columns {sorted(cols)}; expected start_s,end_s,label or clip,label")


# ---------------------------------------------------------------- metrics

def frame_prediction(rec: dict) -> dict | None:
    """The estimate a consumer would act on for a frame: fused, else the best model's."""
    from .run_output import best_estimate, main_face

    f = main_face(rec)
    return best_estimate(f) if f else None


def flicker_per_minute(times: list[float], labels: list[str]) -> float:
    """Label changes per minute of media time (frames without a label skipped)."""
    pairs = [(t, lab) for t, lab in zip(times, labels) if lab is not None]
    if len(pairs) < 2:
        return 0.0
    changes = sum(1 for (_, a), (_, b) in zip(pairs, pairs[1:]) if a != b)
    span = pairs[-1][0] - pairs[0][0]
    return 60.0 * changes / span if span > 0 else 0.0


def score(records: list[dict], label_at=None, spans=None, latency_topic: str = "emotion") -> dict:
    """Accuracy, macro-F1, flicker, first confident label and latency of a replay."""
    from sklearn.metrics import confusion_matrix, f1_score

    times = [r["time_s"] for r in records]
    preds = [frame_prediction(r) for r in records]
    labels = [p["label"] if p else None for p in preds]
    fused_lat = [r["latency_ms"][latency_topic] for r in records if latency_topic in r["latency_ms"]]
    out = {
        "frames": len(records),
        "frames_with_face": sum(1 for r in records if r["faces"]),
        "frames_dropped": sum(1 for r in records if r["missing"]),
        "outputs_missing": dict(collections.Counter(t for r in records for t in r["missing"])),
        "flicker_per_minute": round(flicker_per_minute(times, labels), 2),
        "time_to_first_confident_s": next((r["time_s"] for r, p in zip(records, preds) if p and p["confident"]),
                                          None),
        "time_to_first_face_s": next((r["time_s"] for r in records if r["faces"]), None),
        "prediction_source": sorted({p["model"] for p in preds if p}),
        "latency_ms": ({"median": round(float(np.median(fused_lat)), 2),
                        "p95": round(float(np.percentile(fused_lat, 95)), 2),
                        "max": round(float(np.max(fused_lat)), 2), "n": len(fused_lat)} if fused_lat else None),
    }
    if label_at is None:
        return out
    y_true, y_pred = [], []
    for t, lab in zip(times, labels):
        truth = label_at(t)
        if truth is None:
            continue
        y_true.append(truth)
        y_pred.append(lab or NO_FACE)
    if not y_true:
        out["labelled_frames"] = 0
        return out
    classes = sorted(set(y_true) | set(y_pred) - {NO_FACE}) + ([NO_FACE] if NO_FACE in y_pred else [])
    true_classes = sorted(set(y_true))
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    per_class = {}
    for c in true_classes:
        idx = [i for i, y in enumerate(y_true) if y == c]
        per_class[c] = round(sum(y_pred[i] == c for i in idx) / len(idx), 4)
    # per span (or clip): the majority prediction over its frames
    span_results = []
    for a, b, lab in spans or []:
        inside = [lb for t, lb in zip(times, labels) if a <= t < b]
        votes = collections.Counter(x for x in inside if x)
        span_results.append({"start_s": a, "end_s": None if b == float("inf") else b, "label": lab,
                             "predicted": votes.most_common(1)[0][0] if votes else None, "frames": len(inside)})
    out.update({
        "labelled_frames": len(y_true),
        "accuracy": round(float(np.mean([a == b for a, b in zip(y_true, y_pred)])), 4),
        "per_class_accuracy": per_class,
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=true_classes, average="macro", zero_division=0)), 4),
        "confusion": {"classes": classes, "matrix": cm.tolist()},
        "spans": span_results,
    })
    return out


def plot_confusion(confusion: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes, m = confusion["classes"], np.asarray(confusion["matrix"])
    fig, ax = plt.subplots(figsize=(2.5 + 0.7 * len(classes), 2.2 + 0.6 * len(classes)))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("labelled")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_latency(records: list[dict], path, topic: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = [r["latency_ms"][topic] for r in records if topic in r["latency_ms"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if lat:
        ax.hist(lat, bins=min(40, max(5, len(lat) // 5)), color="tab:blue")
        ax.axvline(float(np.median(lat)), color="k", linestyle="--", label=f"median {np.median(lat):.1f} ms")
        ax.legend()
    ax.set_xlabel(f"image sent -> {topic} received (ms, wall clock)")
    ax.set_ylabel("frames")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- evaluation

def evaluate_bag(bag, out_dir, desc_kwargs: dict | None = None, labels=None, rate: str = "max",
                 topic: str | None = None, progress: bool = True, max_frames: int | None = None,
                 frame_timeout_s: float = 3.0, log_level: str | None = "warn", stamps: str = "bag") -> dict:
    """Replay ``bag`` into the nodes, record every output and write the report.

    Args:
        rate: ``max`` -- each frame waits for its outputs (as fast as the pipeline
            keeps up, nothing dropped by the replay); ``recorded`` -- frames go out at
            the bag's recorded pace, whatever the nodes manage.
        stamps: ``bag`` -- publish the recorded header stamps, loops and jumps
            included (tests how the nodes cope); ``recording`` -- restamp each image
            as first stamp + recording-time offset, always increasing (evaluates
            the perception of a looped or spliced bag as if it were live).

    Returns:
        the report (also in ``report.json`` and ``report.md``).
    """
    from tqdm import tqdm

    from .launch_description import describe
    from .offline import OfflinePipeline
    from .run_output import RunWriter, json_default
    from .sources import BagSource, skipped_inputs

    if rate not in ("max", "recorded"):
        raise ValueError(f"rate {rate!r}: choose max or recorded")
    if stamps not in ("bag", "recording"):
        raise ValueError(f"stamps {stamps!r}: choose bag or recording")
    bag = pathlib.Path(bag)
    out_dir = pathlib.Path(out_dir)
    label_at, layout, spans = (read_labels(labels, bag.name) if labels else (None, None, None))
    source = BagSource(bag, topic=topic, max_frames=max_frames)
    desc = describe(compressed=source.msgtype.endswith("CompressedImage"), available_only=True,
                    **(desc_kwargs or {}))
    writer = RunWriter(out_dir, fps=source.fps or 25.0, video=False)
    stamps_back = 0
    last_stamp = None
    t_start = time.monotonic()
    with OfflinePipeline(desc, frame_timeout_s=frame_timeout_s, log_level=log_level, skip_unstartable=True) as op:
        bar = tqdm(total=source.count, unit="frame", desc=bag.name, disable=not progress, leave=False)
        try:
            wall0 = time.monotonic()
            first_stamp = None
            for frame in source:
                if last_stamp is not None and frame.stamp_ns <= last_stamp:
                    stamps_back += 1
                last_stamp = frame.stamp_ns
                first_stamp = frame.stamp_ns if first_stamp is None else first_stamp
                if stamps == "recording":
                    frame.stamp_ns = first_stamp + int(round(frame.time_s * 1e9))
                if rate == "max":
                    writer.add(op.feed(frame, wait=True))
                else:
                    delay = wall0 + frame.time_s - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    op.feed(frame, wait=False)
                    for r in op.collect(older_than_s=frame_timeout_s):
                        writer.add(r)
                bar.update(1)
            if rate == "recorded":
                for r in op.drain(frame_timeout_s):
                    writer.add(r)
        finally:
            bar.close()
            source.close()
    info = {"input": str(bag), "input_kind": "rosbag2", "topic": source.topic, "msgtype": source.msgtype,
            "fps": source.fps, "nodes": list(op.desc.short_names), "nodes_not_started": op.skipped, "rate": rate,
            "inputs_skipped": skipped_inputs(source), "wall_time_s": round(time.monotonic() - t_start, 2)}
    writer.records.sort(key=lambda r: r["frame"])
    summary = writer.finish(info)
    outputs = op.desc.output_topics()
    lat_topic = next((t for t in ("emotion", "emotion/transformer", "emotion/lstm", "emotion/frame", "emotion/image")
                      if t in outputs), "faces/mesh")
    report = {**info, "stamps": stamps, "labels": str(labels) if labels else None, "labels_layout": layout,
              "stamps_not_increasing": stamps_back, **score(writer.records, label_at, spans, lat_topic)}
    report["frames_in_bag"] = source.count
    report["frames_dropped"] += max(0, (source.count or 0) - len(source.skipped) - len(writer.records))
    if "confusion" in report:
        plot_confusion(report["confusion"], out_dir / CONFUSION_PNG)
    plot_latency(writer.records, out_dir / LATENCY_PNG, lat_topic)
    report["latency_topic"] = lat_topic
    report["faces"] = summary["faces"]
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    (out_dir / REPORT_MD).write_text(report_markdown(report))
    return report


def report_markdown(r: dict) -> str:
    lines = [f"# Evaluation of `{r['input']}`", "",
             f"Topic `{r['topic']}` ({r['msgtype']}), {r['frames_in_bag']} frames, replay rate `{r['rate']}`, "
             f"nodes: {', '.join(r['nodes'])}.", "",
             "| measure | value |", "|---|---|",
             f"| frames with a face | {r['frames_with_face']} / {r['frames']} |",
             f"| frames dropped (an output missing) | {r['frames_dropped']} |",
             f"| messages left out, not decodable | {len(r.get('inputs_skipped') or [])} |",
             f"| header stamps not increasing (loops, jumps) | {r['stamps_not_increasing']} "
             f"(published: {'as recorded' if r['stamps'] == 'bag' else 'restamped from recording time'}) |",
             f"| flicker (label changes per minute) | {r['flicker_per_minute']} |",
             f"| time to first face (s) | {r['time_to_first_face_s']} |",
             f"| time to first confident label (s) | {r['time_to_first_confident_s']} |"]
    if r.get("latency_ms"):
        lm = r["latency_ms"]
        lines.append(f"| latency image -> `{r['latency_topic']}` median / p95 / max (ms) | "
                     f"{lm['median']} / {lm['p95']} / {lm['max']} |")
    if "accuracy" in r:
        lines += [f"| labelled frames | {r['labelled_frames']} |", f"| accuracy | {r['accuracy']} |",
                  f"| macro-F1 | {r['macro_f1']} |", "", "Per-class accuracy (recall):", "",
                  "| class | accuracy |", "|---|---|"]
        lines += [f"| {c} | {a} |" for c, a in r["per_class_accuracy"].items()]
        if r["spans"]:
            lines += ["", "| span (s) | label | predicted (majority) | frames |", "|---|---|---|---|"]
            lines += [f"| {s['start_s']}-{s['end_s'] if s['end_s'] is not None else 'end'} | {s['label']} | "
                      f"{s['predicted']} | {s['frames']} |" for s in r["spans"]]
        lines += ["", f"![confusion matrix]({CONFUSION_PNG})"]
    lines += ["", f"![latency]({LATENCY_PNG})", "", f"Predictions from: {', '.join(r['prediction_source'])}.", ""]
    return "\n".join(lines)
