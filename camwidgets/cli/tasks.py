"""Targets on the command line: ``--box N`` (a detection) and ``--region LABEL`` (a predicted
segmentation region), and what a detector or a segmenter prints instead of top classes."""

from __future__ import annotations

import argparse
from typing import Any

from camwidgets.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--box`` and ``--region``."""
    parser.add_argument(
        "--box",
        type=int,
        metavar="N",
        help="detectors: explain the N-th detection (0 = the highest score; listed in the output)",
    )
    parser.add_argument(
        "--region",
        metavar="LABEL",
        help="segmenters: explain the region the model labels LABEL (a class index or name)",
    )


def check(args: argparse.Namespace) -> None:
    """Cheap checks before the model loads."""
    chosen = [
        flag
        for flag, value in (
            ("--target", args.target),
            ("--box", args.box),
            ("--region", args.region),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        raise UsageError(f"give one of --target, --box and --region, not {' and '.join(chosen)}")
    if args.box is not None and args.box < 0:
        raise UsageError(f"--box takes a detection's index (0 = highest score), got {args.box}")


def target(args: argparse.Namespace, engine: Any, picture: Any, class_of: Any) -> Any:
    """The target object named by ``--box`` / ``--region`` (None when neither was given)."""
    kind = engine.kind
    if args.box is not None:
        if kind != "detector":
            raise UsageError(f"--box needs a detection model; this model is a {kind}")
        found = engine.detect(picture)
        if not found:
            raise UsageError("the detector found nothing in this picture: no box to explain")
        if args.box >= len(found):
            raise UsageError(
                f"--box {args.box}: the detector found {len(found)} boxes (0..{len(found) - 1})"
            )
        return found[args.box]
    if args.region is not None:
        if kind != "segmenter":
            raise UsageError(f"--region needs a segmentation model; this model is a {kind}")
        from camwidgets.targets import Region

        label = class_of(engine, args.region)
        predicted = _predicted(engine, picture)
        mask = predicted == label
        if not mask.any():
            present = ", ".join(engine.classes[c] for c in sorted(set(predicted.flatten())))
            raise UsageError(
                f"--region {args.region!r}: the model labels no pixel {engine.classes[label]!r} "
                f"in this picture (it labels: {present})"
            )
        return Region(mask, label)
    return None


def _predicted(engine: Any, picture: Any) -> Any:
    """The segmenter's per-pixel label map over the model input, (H, W) integers."""
    import torch

    from camwidgets.targets import dense_scores

    prepared = engine.prepare(picture)
    with torch.no_grad():
        output = dense_scores(_output(engine, prepared))
    return output[0].argmax(dim=0).cpu().numpy()


def _output(engine: Any, prepared: Any) -> Any:
    """One no-gradient forward in eval mode, the model's flags restored."""
    import torch

    from camwidgets.engine.capture import evaluating

    with evaluating(engine.model), torch.no_grad():
        return engine.model(prepared.tensor)


def report(engine: Any, picture: Any, top: int) -> bool:
    """Print detections or the predicted classes' pixel shares; False for a classifier."""
    if engine.kind == "detector":
        found = engine.detect(picture)
        print(f"{len(found)} detections (boxes in picture pixels x0, y0, x1, y1):")
        for d in found[:top]:
            x0, y0, x1, y1 = (round(v) for v in d.box)
            print(f"  box {d.rank}: {d.name:>20s}  score={d.score:.3f}  ({x0}, {y0}, {x1}, {y1})")
        return True
    if engine.kind == "segmenter":
        import numpy as np

        predicted = _predicted(engine, picture)
        labels, counts = np.unique(predicted, return_counts=True)
        order = np.argsort(-counts)[:top]
        print("predicted classes (share of the pixels):")
        for i in order:
            share = 100 * counts[i] / predicted.size
            name = engine.classes[int(labels[i])]
            print(f"  {name:>20s}  {share:5.1f}%  (class {int(labels[i])})")
        return True
    return False


def describe(res: Any) -> str:
    """How the explained target is named in the summary line."""
    from camwidgets.targets import Target

    if isinstance(res.target, Target):
        label = getattr(res.target, "label", None)
        return (
            f"{res.target_name!r} (class {label})" if label is not None else repr(res.target_name)
        )
    return f"{res.target_name!r} (class {res.target})"
