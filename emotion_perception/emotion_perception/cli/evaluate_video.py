"""``emotion-perception evaluate-video FOLDER``: score the pipeline on labelled video.

FOLDER holds video files and a labels CSV (``--labels``, default FOLDER/labels.csv)
with the columns ``path,label`` (path relative to FOLDER; label one of angry, disgust,
fear, happy, neutral, sad, surprise; ``clip`` is read as ``path``) and optionally
``subject`` (the person; ``--subject`` names it for rows without one). Every clip goes
through ``emotion-perception run``'s path: the real nodes, one process, every
classifier node on, one frame at a time (nothing dropped). Its run output
(``frames.jsonl``: every member's and the fusion's estimate per frame) is kept under
``--output DIR/clips/<clip>/``, or reused from ``--cache DIR`` (keyed by the clip's
and the models' sha256, so a changed model or clip runs again).

Scored for the fused output and for every member (transformer, lstm, frame, image)
(see :mod:`emotion_perception.video_eval`): clip level, where a model's label for a
clip is the argmax of its mean 7-class probabilities over the frames where it
published an estimate of the main (largest) face: accuracy, macro-F1, confusion, and
beside it the clips right under two other rules (``right_by_rule``: mean of the
log-probabilities, vote of the ``confident`` frames); frame
level (each frame carries its clip's label): accuracy, macro-F1, ECE, NLL, and the
reliability of the ``confident`` flag. Writes ``DIR/metrics.json`` and
``DIR/clips.csv`` and prints a table.
"""

from __future__ import annotations

import argparse

from .args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from .pipeline import params_file_arg
    from .run import add_offline_arguments

    p = sub.add_parser("evaluate-video", help="clip- and frame-level scores of the pipeline on labelled videos",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="folder of video files with a labels CSV")
    p.add_argument("--labels", default=None, help="labels CSV (path,label[,subject]); default FOLDER/labels.csv")
    p.add_argument("--output", "-o", required=True, help="folder for metrics.json, clips.csv and the runs")
    p.add_argument("--cache", default=None, help="folder of earlier clip runs to reuse (and to add to)")
    p.add_argument("--subject", default=None,
                   help="the person of every clip whose row names none (for leave-one-actor-out fits; "
                        "default: each such clip its own person)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="score only the first N frames of each clip")
    p.add_argument("--params-file", default=None, type=params_file_arg,
                   help="parameter YAML of the nodes (default: the package's)")
    add_offline_arguments(p)
    p.set_defaults(func=run)


def cache_key(clip, params_file: str | None, max_frames: int | None) -> str:
    """sha256 over the clip's bytes, the shipped models' SHA256SUMS, the parameter file and the frame limit."""
    import hashlib
    import pathlib

    from ..assets import models_dir
    from ..launch_description import default_params_file

    h = hashlib.sha256()
    h.update(pathlib.Path(clip).read_bytes())
    h.update((models_dir() / "SHA256SUMS").read_bytes())
    h.update(pathlib.Path(params_file or default_params_file()).read_bytes())
    h.update(str(max_frames).encode())
    return h.hexdigest()[:16]


def run_clip(clip, out_dir, params_file=None, max_frames=None, frame_timeout_s=3.0, progress=True,
             log_level: str | None = "warn") -> None:
    """``emotion-perception run`` on one clip (no annotated video) into ``out_dir``."""
    from ..launch_description import describe
    from ..offline import run_to_folder
    from ..sources import open_source

    source = open_source(clip, max_frames=max_frames)
    desc = describe(params_file=params_file, available_only=True)
    run_to_folder(source, out_dir, desc, progress=progress, video=False, frame_timeout_s=frame_timeout_s,
                  log_level=log_level)


def run(args: argparse.Namespace) -> int:
    import csv
    import json
    import pathlib
    import shutil
    import sys

    from .. import video_eval
    from ..run_output import FRAMES_FILE, SUMMARY_FILE

    folder = pathlib.Path(args.folder)
    if not folder.is_dir():
        print(f"emotion-perception evaluate-video: {folder}: no such folder", file=sys.stderr)
        return 2
    labels_path = pathlib.Path(args.labels) if args.labels else folder / "labels.csv"
    if not labels_path.is_file():
        print(f"emotion-perception evaluate-video: {labels_path}: no labels file; write one with the columns "
              "path,label[,subject] (a row per video) or name it with --labels", file=sys.stderr)
        return 2
    try:
        labels = video_eval.read_labels(labels_path)
    except (OSError, ValueError) as e:
        print(f"emotion-perception evaluate-video: {e}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    cache = pathlib.Path(args.cache) if args.cache else None
    clips = []
    for row in labels:
        clip = folder / row["path"]
        if not clip.is_file():
            print(f"emotion-perception evaluate-video: {clip}: no such file (row of the labels CSV)", file=sys.stderr)
            return 2
        run_dir = out / "clips" / clip.stem
        key = cache_key(clip, args.params_file, args.max_frames)
        cached = cache / f"{clip.stem}-{key}" if cache else None
        if cached is not None and (cached / FRAMES_FILE).is_file():
            run_dir.mkdir(parents=True, exist_ok=True)
            for name in (FRAMES_FILE, SUMMARY_FILE):
                if (cached / name).is_file():
                    shutil.copyfile(cached / name, run_dir / name)
        else:
            run_clip(clip, run_dir, args.params_file, args.max_frames, args.frame_timeout, not args.quiet,
                     args.log_level)
            if cached is not None:
                cached.mkdir(parents=True, exist_ok=True)
                for name in (FRAMES_FILE, SUMMARY_FILE):
                    shutil.copyfile(run_dir / name, cached / name)
        clips.append({"name": row["path"], "label": row["label"], "subject": row.get("subject") or args.subject or "",
                      "streams": video_eval.streams(video_eval.load_run(run_dir))})
    result = video_eval.score_clips(clips)
    result["labels"] = str(labels_path)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / "clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(result["clips"][0]))
        w.writeheader()
        w.writerows(result["clips"])
    print(video_eval.table(result))
    print(f"results in {out}")
    return 0
