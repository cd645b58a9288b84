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

        train_fusion(data, out, video_runs=getattr(args, "video", None))
    elif t == "image-cnn":
        import pathlib

        from .image import Recipe, checkpoint_default, train_image_cnn

        r = Recipe(arch=args.arch, seed=args.seed)
        if args.epochs:
            r.epochs = args.epochs
        if args.quick:  # a tiny network on 2% of the faces: a smoke test, not a model
            r.epochs, r.train_fraction, r.widths = args.epochs or 1, 0.02, (8, 16, 16, 16)
        ckpt = pathlib.Path(args.checkpoint_dir) if args.checkpoint_dir else checkpoint_default(r)
        train_image_cnn(data, out, r, checkpoint_dir=ckpt, quant=args.quant, tta_flip=not args.no_tta,
                        compare_exports=not args.quick)
    else:
        raise SystemExit(f"unknown target {t}")
    return 0
