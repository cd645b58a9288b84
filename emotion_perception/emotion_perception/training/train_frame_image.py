"""Dispatch of ``emotion-perception train`` for the frame, image and fusion targets."""

from __future__ import annotations


def run_target(args, data, out) -> int:
    t = args.target
    if t in ("svm-landmarks", "svm-blendshapes"):
        from .frame import TRAINERS

        TRAINERS[t](data, out)
    elif t == "gnn-landmarks":
        from .gnn import train_gnn

        train_gnn(data, out, epochs=args.epochs, quick=args.quick)
    elif t == "fused":
        from .fusion import train_fusion

        train_fusion(data, out)
    elif t == "image-cnn":
        if not args.images or not args.labels:
            raise SystemExit("train image-cnn needs --images DIR and --labels CSV (and --imagenet-weights FILE); "
                             "see `emotion-perception train --help`")
        if not args.imagenet_weights:
            raise SystemExit("train image-cnn needs --imagenet-weights FILE (MobileNetV2 ImageNet weights, no top)")
        from .image import train_image

        train_image(args.images, args.labels, args.imagenet_weights, out, epochs=args.epochs, seed=args.seed)
    else:
        raise SystemExit(f"unknown target {t}")
    return 0
