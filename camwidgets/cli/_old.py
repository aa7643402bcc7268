"""Command line: ``camwidgets demo`` serves the explorer in Voila; ``camwidgets explain`` prints."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_NOTEBOOK = Path(__file__).parent / "demo" / "app.ipynb"


def _demo(args: argparse.Namespace) -> int:
    """Serve the demo notebook with Voila on 127.0.0.1 until interrupted."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    if voila is None:
        print('voila is not installed: pip install "camwidgets[demo]"', file=sys.stderr)
        return 2
    command = [
        voila,
        str(DEMO_NOTEBOOK),
        f"--port={args.port}",
        "--Voila.ip=127.0.0.1",
        "--no-browser" if args.no_browser else "",
        "--theme=light",
    ]
    print(f"camwidgets demo: http://127.0.0.1:{args.port}/  (Ctrl+C to stop)", flush=True)
    try:
        return subprocess.call([c for c in command if c])
    except KeyboardInterrupt:
        return 0


def _explain(args: argparse.Namespace) -> int:
    """Explain one image with the engine and print the top classes and the map's summary."""
    from . import zoo
    from .engine import GradCAM

    bundle = zoo.load(args.model)
    engine = GradCAM(bundle.model, classes=bundle.classes, transform=bundle.transform)
    if args.image:
        image: object = args.image
        source = args.image
    else:
        scene = zoo.sample_scenes(1, seed=args.seed)[0]
        image, source = scene.image, f"a generated scene (seed {args.seed})"
    print(f"model: {args.model}; image: {source}")
    predictions = engine.predict(image, k=args.top)  # type: ignore[arg-type]
    for p in predictions:
        print(f"  {p.name:>12s}  p={p.probability:.3f}  logit={p.logit:+.3f}")  # type: ignore[union-attr]
    res = engine.explain(image, layer=args.layer, counterfactual=args.counterfactual)  # type: ignore[arg-type]
    heat = res.heatmap
    row, col = divmod(int(heat.argmax()), heat.shape[-1])
    shape = "x".join(map(str, engine.layer_shapes[res.layer]))
    print(
        f"Grad-CAM for {res.target_name!r} at {res.layer} ({shape}): score {res.score:+.3f}, "
        f"map max {float(heat.max()):.4f} at (row {row}, col {col}), "
        f"{float((heat > 0).float().mean()) * 100:.1f}% of pixels positive"
    )
    if args.save:
        _save_overlay(engine.prepare(image).display[0], heat.numpy(), args.save)  # type: ignore[arg-type]
        print(f"saved overlay to {args.save}")
    return 0


def _save_overlay(picture: object, heat: object, path: str) -> None:
    """Write the picture with the map blended in red (display scaling only)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(picture, dtype=np.float32)
    values = np.asarray(heat, dtype=np.float32)
    scaled = values / values.max() if values.max() > 0 else values
    red = np.zeros_like(pixels)
    red[..., 0] = 255.0
    blend = pixels * (1 - 0.5 * scaled[..., None]) + red * 0.5 * scaled[..., None]
    Image.fromarray(blend.clip(0, 255).astype(np.uint8)).save(path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``camwidgets`` console command."""
    parser = argparse.ArgumentParser(prog="camwidgets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="serve the explorer on the shapes model in Voila")
    demo.add_argument("--port", type=int, default=8866)
    demo.add_argument("--no-browser", action="store_true", default=True)
    demo.set_defaults(run=_demo)
    explain = sub.add_parser("explain", help="explain an image and print the top classes")
    explain.add_argument("image", nargs="?", help="image file (default: a generated scene)")
    explain.add_argument("--model", default="shapes", help="a zoo model: shapes or shortcut")
    explain.add_argument("--layer", default=None)
    explain.add_argument("--counterfactual", action="store_true")
    explain.add_argument("--top", type=int, default=5)
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--save", default=None, help="write the overlay to this PNG")
    explain.set_defaults(run=_explain)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
