"""``camwidgets explain IMAGE``: the model's top classes and one map, drawn on the picture.

The map is computed over the model's input and drawn back onto the original picture at its own
resolution, following the transform's resize and centre crop; what the model did not see is
dimmed and framed. The peak is reported in the picture's pixel coordinates.
"""

from __future__ import annotations

import argparse
from typing import Any

from camwidgets.cli.errors import UsageError
from camwidgets.cli.models import MODEL_HELP
from camwidgets.cli.tasks import add_arguments as add_target_arguments

ZOO_SIDE = 96  # the zoo models' scenes are 96x96 pictures


def add_parser(subparsers: Any) -> None:
    """Register ``explain`` on the ``camwidgets`` parser."""
    parser = subparsers.add_parser(
        "explain",
        help="explain an image: top classes, a Grad-CAM map and an overlay picture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "image", nargs="?", help="an image file (default: a generated scene of shapes)"
    )
    parser.add_argument("--model", default="zoo:shapes", metavar="MODEL", help=MODEL_HELP)
    parser.add_argument(
        "--target", "-t", help="class to explain: an index or a name (default: the top class)"
    )
    add_target_arguments(parser)
    parser.add_argument("--layer", "-l", help="layer to explain at (default: the last spatial one)")
    parser.add_argument(
        "--method", "-m", default="gradcam", help="attribution method (default: gradcam)"
    )
    parser.add_argument(
        "--counterfactual",
        action="store_true",
        help="show what speaks against the class (negated channel weights)",
    )
    parser.add_argument("--top", type=_positive, default=5, metavar="K", help="classes to list")
    parser.add_argument(
        "--save", "-o", metavar="OUT", help="write the overlay; the extension picks the format"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--list", action="store_true", help="list the layers and methods, then stop"
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="torchvision models: download missing weights through torch hub",
    )
    parser.add_argument("--classes", metavar="FILE", help="class names, one per line")
    parser.add_argument(
        "--size",
        type=_positive,
        default=224,
        help="input side for model files (ImageNet preprocessing; default 224)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="scene seed when no image is given (default 0)"
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Explain one image and print what was computed; cheap checks come before the model."""
    import os
    import sys

    from camwidgets.cli import tasks
    from camwidgets.cli.save import check_output, output_format

    tasks.check(args)
    if args.image is not None and not os.path.isfile(args.image):
        # Worded as the engine words them (engine/inputs.py), the path named once.
        if os.path.isdir(args.image):
            raise UsageError(f"image path {args.image!r} is a directory; give an image file")
        raise UsageError(f"image file {args.image!r} does not exist")
    inputs = [p for p in (args.image, args.model, args.classes) if p and os.path.isfile(p)]
    if args.save is not None:
        output_format(args.save)
        check_output(args.save, args.force, inputs)
    from camwidgets.cli.models import load_model

    loaded = load_model(
        args.model, download=args.download, classes_file=args.classes, size=args.size
    )
    for note in loaded.notes:
        print(f"camwidgets explain: warning: {note}", file=sys.stderr)
    picture, source = _picture(args)
    engine = _engine(loaded)
    if args.list:
        _print_layers(engine)
        return 0
    if loaded.zoo and args.image is not None and picture.size != (ZOO_SIDE, ZOO_SIDE):
        print(
            f"camwidgets explain: note: {loaded.label} is a teaching model trained on "
            f"{ZOO_SIDE}x{ZOO_SIDE} synthetic scenes of six coloured shapes; this picture is "
            f"{picture.width}x{picture.height}, so its classes and map say little about it. "
            "For photos use --model torchvision:NAME or a model file.",
            file=sys.stderr,
        )
    layer = _layer(engine, args.layer)
    method = _method(engine, layer, args.method)
    target = _target(engine, args.target)
    target = _run_model(lambda: tasks.target(args, engine, picture, _target)) or target
    predictions, res = _run_model(
        lambda: (
            None if engine.kind != "classifier" else engine.predict(picture, k=args.top),
            engine.explain(
                picture,
                layer=layer,
                target=target,
                counterfactual=args.counterfactual,
                method=method,
            ),
        )
    )
    _report(args, loaded.label, source, picture, engine, predictions, res, inputs)
    return 0


def _picture(args: argparse.Namespace) -> tuple[Any, str]:
    """The picture as the user sees it (EXIF rotation applied), and how to name it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if args.image is None:
        from camwidgets import zoo

        scene = zoo.sample_scenes(1, seed=args.seed)[0]
        return Image.fromarray(scene.image).convert("RGB"), f"a generated scene (seed {args.seed})"
    try:
        with Image.open(args.image) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise UsageError(f"cannot read {args.image!r} as a picture ({err})") from err
    if picture.width == 0 or picture.height == 0:
        raise UsageError(f"{args.image!r} is an empty picture")
    return picture, args.image


def _engine(loaded: Any) -> Any:
    """The engine for the loaded model; a model that fails on a test input is a user error."""
    from camwidgets.engine import GradCAM

    return _run_model(
        lambda: GradCAM(loaded.model, classes=loaded.classes, transform=loaded.transform)
    )


def _run_model(call: Any) -> Any:
    """Run ``call``, turning a failure inside the user's model into a one-line error."""
    try:
        return call()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"the model failed: {first}") from err


def _layer(engine: Any, layer: str | None) -> str:
    """The layer to explain at; a wrong name gets the engine's message and suggestions."""
    if layer is None:
        return str(engine.default_layer)
    if layer not in engine.layers:
        engine.methods(layer)  # raises the engine's ValueError: unknown layer, did you mean
    return layer


def _method(engine: Any, layer: str, method: str) -> str:
    """The method: unknown names as the engine words them, known ones checked at ``layer``."""
    from camwidgets.engine.methods import get_method

    get_method(method)  # ValueError: unknown method 'grad-cam'; available: ...
    usable: list[str] = engine.methods(layer)
    if method in usable:
        return method
    raise UsageError(
        f"method {method!r} is not usable at {layer}; usable there: {', '.join(usable)}"
    )


def _target(engine: Any, target: str | None) -> int | None:  # also --region's label
    """A class index from an index or a name: the engine's resolver, so its words too."""
    if target is None:
        return None
    from camwidgets.engine.classnames import resolve_class

    return resolve_class(target, engine.classes)


def _print_layers(engine: Any) -> None:
    """The candidate layers with their map shapes and usable methods."""
    print(f"{len(engine.layers)} layers (forward order; default {engine.default_layer}):")
    for name in engine.layers:
        shape = "x".join(map(str, engine.layer_shapes[name]))
        print(f"  {name:<30s} {shape:>14s}  {', '.join(engine.methods(name))}")


def _report(
    args: argparse.Namespace,
    label: str,
    source: str,
    picture: Any,
    engine: Any,
    predictions: Any,
    res: Any,
    inputs: list[str],
) -> None:
    """Print the classes and the map's summary in picture coordinates; save the overlay."""
    import numpy as np

    from camwidgets.cli import tasks
    from camwidgets.cli.geometry import Geometry, geometry
    from camwidgets.cli.overlay import card_layout, overlay_card
    from camwidgets.cli.save import write_picture

    print(f"model: {label}; image: {source} ({picture.width}x{picture.height})")
    if not tasks.report(engine, picture, args.top):
        for p in predictions:
            print(
                f"  {p.name:>20s}  p={p.probability:.3f}  logit={p.logit:+.3f}  (class {p.index})"
            )
    res = res.cpu()  # the CLI draws and saves on the host
    heat = res.heatmap
    shape = "x".join(map(str, engine.layer_shapes[res.layer]))
    side = "against" if res.counterfactual else "for"
    print(
        f"{res.method} map {side} {tasks.describe(res)} at {res.layer} "
        f"({shape}): score {res.score:+.3f}, p={res.probability:.3f}"
    )
    view = geometry(engine.transform, (picture.height, picture.width))
    if isinstance(view, Geometry) and view.model_input == tuple(heat.shape):
        values, inside = view.to_picture(heat)
        shown = np.asarray(picture)
        top, left, bottom, right = view.view()
        seen = (
            "the whole picture"
            if view.covers_all()
            else f"x {left:.0f}-{right:.0f}, y {top:.0f}-{bottom:.0f} (a centre crop)"
        )
        print(
            f"the model saw {seen}, resized to {heat.shape[1]}x{heat.shape[0]}; "
            "coordinates below are picture pixels"
        )
    else:
        why = view if isinstance(view, str) else "the transform's output size is not the map's"
        values, inside = heat.numpy(), np.ones(tuple(heat.shape), dtype=bool)
        shown = np.asarray(engine.prepare(picture).display[0])
        print(
            f"the map cannot be placed on the original picture ({why}); it is shown over the "
            f"model's {heat.shape[1]}x{heat.shape[0]} input, and coordinates are in that input"
        )
    peak = float(values.max())
    if peak > 0:
        row, col = np.unravel_index(int(np.argmax(values)), values.shape)
        positive = float((values[inside] > 0).mean()) * 100
        print(
            f"map max {peak:.4g} at (x {col}, y {row}); {positive:.1f}% of the seen pixels positive"
        )
    else:
        print(
            f"map is empty (all zero): nothing at {res.layer} "
            f"{'lowers' if res.counterfactual else 'raises'} the score of {res.target_name!r}"
        )
    if args.save is not None:
        title = f"{res.method} {side} {res.target_name} (class {res.target}) at {res.layer}"
        card = overlay_card(shown, values, inside, title, res.method)
        layout = card_layout(*values.shape)
        scaled = f", scaled {layout.scale}x" if layout.scale > 1 else ""
        write_picture(args.save, card, args.force, inputs)
        print(
            f"saved overlay to {args.save} ({card.shape[1]}x{card.shape[0]}: the "
            f"{shown.shape[1]}x{shown.shape[0]} picture{scaled}, with a colour bar)"
        )
