"""``camwidgets audit``: the command-line face of :func:`camwidgets.audit.audit`.

``add_parser(subparsers)`` registers the sub-command on the main ``camwidgets`` parser (its
handler is ``args.run(args) -> int``, like the other sub-commands); ``python -m
camwidgets.audit`` runs it alone. Errors the user can fix print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from camwidgets.cli.errors import UsageError

__all__ = ["add_parser", "main", "run"]

EXAMPLE = (
    "example: camwidgets audit zoo:scenes:2000:mark=correct --model zoo:shortcut "
    "--out audit.parquet --report report.html"
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` sub-command to an ``argparse`` sub-parsers object and return it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="Grad-CAM over a whole dataset: Parquet rows, per-class report",
        description=(
            "Explain every image of DATA, write one Parquet row per image as it goes (resumable), "
            "and optionally an HTML report with per-class average maps and outliers."
        ),
        epilog=EXAMPLE,
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="a folder of images (class sub-folders give labels), an image, a .txt list of "
        "paths, or zoo:scenes:N[:seed=S][:mark=none|correct|swapped][:objects=1|2]",
    )
    parser.add_argument(
        "--model",
        default="zoo:shapes",
        help="zoo:shapes, zoo:shortcut, torchvision:NAME[:WEIGHTS], or a file saved with "
        "torch.save(model) (default: zoo:shapes)",
    )
    parser.add_argument("--out", required=True, help="output folder, e.g. audit.parquet")
    parser.add_argument("--layer", default=None, help="layer to explain (default: the last)")
    parser.add_argument("--method", default="gradcam", help="gradcam, cam, ... (default gradcam)")
    parser.add_argument(
        "--target", default="pred", help="pred (top-1), label, or a class name or index"
    )
    parser.add_argument("--counterfactual", action="store_true", help="explain -Y_c instead")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (64)")
    parser.add_argument("--top-k", type=int, default=5, help="predictions stored per image (5)")
    parser.add_argument(
        "--regions", default="4", help="grid of regions: N (N x N) or RxC (default 4)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="pointing-game tolerance in input pixels"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray Data: a cluster address, or none to start a local instance",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="local: threads loading images ahead (0)"
    )
    parser.add_argument("--concurrency", type=int, default=None, help="Ray: number of actors")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="Ray: GPUs per actor")
    parser.add_argument("--classes", default=None, help="file model: class names, one per line")
    parser.add_argument("--size", type=int, default=224, help="file model: input size (224)")
    parser.add_argument("--report", default=None, help="also write an HTML report here")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted audit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(run=run)
    return parser


def _regions(text: str) -> int | tuple[int, int]:
    """``4`` or ``2x3``."""
    try:
        if "x" in text.lower():
            rows, cols = text.lower().split("x")
            return int(rows), int(cols)
        return int(text)
    except ValueError:
        raise UsageError(f"--regions must be N or RxC (e.g. 4 or 2x3), got {text!r}") from None


def _model(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model argument: a zoo name (loaded by the audit itself), or anything the command
    line's one model loader takes (torchvision:NAME, a file saved with ``torch.save(model)``),
    with its classes and transform."""
    spec: str = args.model
    if spec.startswith("zoo:"):
        if args.classes:
            raise UsageError("--classes is for model files; zoo models know their classes")
        return spec, None, None
    from camwidgets.cli.models import load_model

    loaded = load_model(spec, classes_file=args.classes, size=args.size)
    for note in loaded.notes:
        print(f"camwidgets audit: warning: {note}", file=sys.stderr)
    return loaded.model, loaded.classes, loaded.transform


def run(args: argparse.Namespace) -> int:
    """Run the audit the arguments describe; 0 on success, 2 on a usage error."""
    try:
        return _run(args)
    except (
        UsageError,
        ValueError,
        TypeError,
        FileExistsError,
        FileNotFoundError,
        ImportError,
    ) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"camwidgets audit: error: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """The work of ``run``, raising on errors."""
    from .run import audit
    from .store import is_audit

    out, report = Path(args.out), Path(args.report) if args.report else None
    if args.force and args.resume:
        raise UsageError("--force and --resume contradict each other; pick one")
    if out.exists() and not (args.force or args.resume):
        what = "an audit" if is_audit(out) else "something that is not an audit"
        raise UsageError(
            f"{out} exists ({what}); pass --force to overwrite or --resume to continue"
        )
    if report is not None and report.exists() and not args.force:
        raise UsageError(f"{report} exists; pass --force to overwrite it")
    if report is not None and report.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report must be an .html file, got {str(report)!r}")
    model, classes, transform = _model(args)
    ray = args.ray is not None
    if not ray and (args.concurrency is not None or args.num_gpus):
        raise UsageError("--concurrency and --num-gpus need --ray")
    result = audit(
        args.data,
        model,
        out,
        classes=classes,
        transform=transform,
        layer=args.layer,
        method=args.method,
        target=args.target,
        counterfactual=args.counterfactual,
        top_k=args.top_k,
        regions=_regions(args.regions),
        tolerance=args.tolerance,
        batch_size=args.batch_size,
        backend="ray" if ray else "local",
        address=None if args.ray in (None, "local") else args.ray,
        concurrency=args.concurrency,
        num_gpus=args.num_gpus,
        resume=args.resume,
        overwrite=args.force,
        progress=not args.quiet,
        workers=args.workers,
    )
    if report is not None:
        result.write_report(report)
    if not args.quiet:
        print(
            f"{len(result)} images audited -> {out}" + (f"; report -> {report}" if report else "")
        )
        for s in result.summary():
            extra = "".join(
                f", {label} {value:.0%}"
                for label, value in (("in masks", s.in_mask), ("in boxes", s.in_boxes))
                if value is not None
            )
            print(
                f"  {s.name:>14s}: n={s.count}, average map peaks at "
                f"(x={s.peak[1]}, y={s.peak[0]}) px{extra}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m camwidgets.audit``: the sub-command on its own."""
    parser = argparse.ArgumentParser(prog="camwidgets")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.run(args)
    return code
