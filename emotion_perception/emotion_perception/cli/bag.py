"""``emotion-perception bag``: rosbag2 tools for replay evaluation.

``bag from-video VIDEO BAG`` writes a video as sensor_msgs/Image (or CompressedImage)
with real timestamps (sqlite3 or mcap, via rosbags). ``bag evaluate BAG`` replays a
bag (also one from ``ros2 bag record``) into the running nodes, records every output
and writes report.json, report.md, confusion.png, latency.png, frames.jsonl and
timeline.png. Labels file: CSV ``start_s,end_s,label`` (seconds from the bag's first
image) or ``clip,label`` (whole bag; clip = bag folder or video name).
"""

from __future__ import annotations

import argparse

from .args import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from .pipeline import add_description_arguments

    p = sub.add_parser("bag", help="write bags from videos; replay a bag and score the outputs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bag_command", required=True, metavar="ACTION")
    w = bsub.add_parser("from-video", help="write a video as a rosbag2 of images")
    w.add_argument("video")
    w.add_argument("bag", help="bag directory to create (must not exist)")
    w.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage (JPEG) instead of Image")
    w.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    w.add_argument("--topic", default="/camera/image_raw",
                   help="topic (default /camera/image_raw; /compressed is appended with --compressed)")
    w.add_argument("--frame-id", default="camera")
    w.add_argument("--max-frames", type=positive_int, default=None)
    w.add_argument("--loops", type=positive_int, default=1, help="write the video this many times (stamps repeat)")
    w.set_defaults(func=run_from_video)
    e = bsub.add_parser("evaluate", help="replay a bag into the nodes and write a report")
    e.add_argument("bag")
    e.add_argument("--output", "-o", required=True, help="report folder (created)")
    e.add_argument("--labels", default=None, help="CSV: start_s,end_s,label or clip,label")
    e.add_argument("--rate", choices=("max", "recorded"), default="max",
                   help="max: each frame waits for its outputs; recorded: the bag's own pace")
    e.add_argument("--stamps", choices=("bag", "recording"), default="bag",
                   help="bag: publish the recorded header stamps (loops and jumps included); recording: "
                   "restamp from the recording time, always increasing")
    e.add_argument("--topic", default=None, help="image topic when the bag holds several")
    e.add_argument("--max-frames", type=positive_int, default=None)
    e.add_argument("--frame-timeout", type=positive_float, default=3.0, help="wait for a frame's outputs, s")
    e.add_argument("--quiet", action="store_true")
    add_description_arguments(e, image_topic=False)
    e.set_defaults(func=run_evaluate)


def run_from_video(args: argparse.Namespace) -> int:
    import sys

    from ..bags import video_to_bag
    from ..sources import SourceError

    topic = args.topic
    if args.compressed and not topic.endswith("/compressed"):
        topic = topic.rstrip("/") + "/compressed"
    try:
        info = video_to_bag(args.video, args.bag, compressed=args.compressed, storage=args.storage, topic=topic,
                            frame_id=args.frame_id, max_frames=args.max_frames, loops=args.loops)
    except (SourceError, FileExistsError, ValueError) as e:
        print(f"emotion-perception bag from-video: {e}", file=sys.stderr)
        return 2
    print(f"{args.bag}: {info['frames']} {info['msgtype']} on {info['topic']} ({info['storage']}, "
          f"{info['duration_s']} s)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..bags import evaluate_bag
    from ..sources import SourceError
    from .pipeline import enabled_from_args

    try:
        report = evaluate_bag(args.bag, args.output, labels=args.labels, rate=args.rate, topic=args.topic,
                              progress=not args.quiet, max_frames=args.max_frames,
                              frame_timeout_s=args.frame_timeout, stamps=args.stamps,
                              desc_kwargs={"namespace": args.namespace, "params_file": args.params_file,
                                           "enabled": enabled_from_args(args)})
    except (SourceError, ValueError, OSError) as e:
        print(f"emotion-perception bag evaluate: {e}", file=sys.stderr)
        return 2
    keys = ("frames", "frames_with_face", "frames_dropped", "accuracy", "macro_f1", "flicker_per_minute",
            "time_to_first_confident_s", "latency_ms")
    print(json.dumps({k: report.get(k) for k in keys}))
    for item in report["inputs_skipped"]:
        print(f"emotion-perception bag evaluate: left out {item['input']}: {item['reason']}", file=sys.stderr)
    print(f"report in {args.output}/report.md")
    return 0
