"""``emotion-perception run INPUT --output DIR``: the pipeline on a recording, offline.

INPUT is a video file, a folder of images or one image, a rosbag2 directory (sqlite3
or mcap, Image or CompressedImage) or a camera (``/dev/video0`` or ``0``). Every frame
goes through the same nodes as on the robot (real middleware, one process), one frame
at a time, so none is dropped. An image or bag message that cannot be read is left
out with one line saying which and why, and listed in summary.json. DIR receives
frames.jsonl, summary.json, annotated.mp4 and timeline.png.
"""

from __future__ import annotations

import argparse

from .args import positive_float, positive_int


def add_offline_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a run through the nodes one frame at a time (``offline.run_to_folder``),
    shared by ``run`` and ``evaluate-video``."""
    p.add_argument("--frame-timeout", type=positive_float, default=3.0, help="wait for a frame's outputs, s (default 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="warn",
                   help="ROS log level of the nodes (default warn: their start-up lines are INFO)")


def register(sub: argparse._SubParsersAction) -> None:
    from .pipeline import add_description_arguments

    p = sub.add_parser("run", help="run the pipeline on a video, images, a bag or a camera",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file, image folder or image file, rosbag2 directory, /dev/videoN or camera index")
    p.add_argument("--output", "-o", required=True, help="folder for the results (created)")
    p.add_argument("--topic", default=None, help="image topic to read from a bag with several")
    p.add_argument("--fps", type=positive_float, default=None, help="frame rate assumed for an image folder (default 10)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    p.add_argument("--compressed", action="store_true",
                   help="send frames to the nodes as CompressedImage (JPEG) instead of Image "
                   "(a bag of CompressedImage is always replayed as such)")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    add_offline_arguments(p)
    add_description_arguments(p, image_topic=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..launch_description import describe
    from ..sources import SourceError, open_source
    from .pipeline import enabled_from_args

    try:
        source = open_source(args.input, topic=args.topic, fps=args.fps, max_frames=args.max_frames)
    except SourceError as e:
        print(f"emotion-perception run: {e}", file=sys.stderr)
        return 2
    # a bag's own messages are replayed as recorded (raw or compressed) unless told otherwise
    compressed = args.compressed or (source.kind == "rosbag2" and source.msgtype.endswith("CompressedImage"))
    desc = describe(compressed=compressed, namespace=args.namespace, params_file=args.params_file,
                    enabled=enabled_from_args(args), available_only=True)
    from ..offline import run_to_folder

    source.on_skip = lambda where, why: print(f"emotion-perception run: left out {where}: {why}", file=sys.stderr)
    summary = run_to_folder(source, args.output, desc, progress=not args.quiet, video=not args.no_video,
                            frame_timeout_s=args.frame_timeout, log_level=args.log_level)
    print(json.dumps({k: summary[k] for k in ("frames", "frames_with_face", "nodes", "wall_time_s")}))
    if not summary["frames"]:
        print(f"emotion-perception run: {args.input}: no frame could be read "
              f"({len(summary['inputs_skipped'])} left out, listed in summary.json)", file=sys.stderr)
        return 2
    for fid, f in summary["faces"].items():
        print(f"{fid}: {f['frames']} frames, clip label {f['clip_label']} (mean probability), "
              f"majority of frames {f['majority']}")
    print(f"results in {args.output}")
    return 0
