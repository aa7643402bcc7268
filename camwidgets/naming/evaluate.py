"""Measure how often ``describe`` names what the zoo models really look at.

Run ``python -m camwidgets.naming.evaluate`` (options: ``--help``). For each zoo model it
dissects ``layer4`` on a concept set (``zoo.concepts(--concepts, seed=--concept-seed)``), then
explains ``--scenes`` fresh scenes of another collection (``--scene-seed``) and checks the top-k
channels of each Grad-CAM map (by alpha_k times the positive mass of A^k, see ``describe``):

* shapes model, single-object scenes without a mark: a hit when one of the top-k channels is
  named after the explained class's shape;
* shortcut model, single-object scenes with their class's mark: a hit when one of the top-k
  channels is named after a concept of the ``mark`` category (the corner mark, or the mark of
  one colour).

Beside each rate it prints the chance rate: the probability that k channels drawn at random from
the layer include such a channel (averaged over the scenes), so the rates can be read against it,
and an exact rate: the top-k channels name the scene's own shape, or its own mark colour.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from camwidgets.engine import GradCAM
from camwidgets.zoo import load
from camwidgets.zoo.concepts import MARKS, concepts
from camwidgets.zoo.scenes import MarkMode, make_scene

from .describe import Description, describe
from .dissect import dissect
from .names import ChannelNames

__all__ = ["Measurement", "main", "measure"]


@dataclass(frozen=True)
class Measurement:
    """How often the top-k channels of a model's maps carry the expected name.

    Attributes:
        model: zoo model name.
        expected: what a hit names ("the explained shape" or "the corner mark").
        scenes: scenes explained.
        hits: scenes whose top-k channels include an expected name.
        rate: hits / scenes.
        exact: scenes whose top-k channels name exactly what is in the scene: the explained
            shape, or for the shortcut model the mark of the scene's own colour.
        chance: mean probability that k random channels include an expected name.
        accuracy: the model's top-1 accuracy on those scenes.
        named: channels of the layer with a name.
        top_names: the most frequent names among the top-k channels, with counts.
    """

    model: str
    expected: str
    scenes: int
    hits: int
    rate: float
    exact: float
    chance: float
    accuracy: float
    named: int
    top_names: list[tuple[str, int]]


def _chance(names: ChannelNames, wanted: Callable[[str | None], bool], k: int) -> float:
    """P(k channels drawn without replacement include one whose name is wanted)."""
    total = len(names)
    good = sum(1 for j in range(total) if wanted(names.name(j)))
    draw = min(k, total)
    return 1.0 - math.comb(total - good, draw) / math.comb(total, draw)


def _wanted(model: str, names: ChannelNames, shape: str) -> Callable[[str | None], bool]:
    """What counts as a hit: a mark concept (shortcut), else the explained shape's name."""
    if model == "shortcut":
        return lambda name: names.category(name) == "mark"
    return lambda name: name == shape


def measure(
    model: str,
    names: ChannelNames,
    engine: GradCAM,
    scenes: int,
    scene_seed: int,
    k: int = 3,
    batch_size: int = 50,
) -> Measurement:
    """Explain ``scenes`` scenes of ``scene_seed`` and count the top-k channels' names."""
    mark: MarkMode = "correct" if model == "shortcut" else "none"
    hits = exact = correct = 0
    chances: list[float] = []
    counts: Counter[str] = Counter()
    for start in range(0, scenes, batch_size):
        stop = min(scenes, start + batch_size)
        batch = [make_scene(scene_seed, i, mark=mark) for i in range(start, stop)]
        result = engine.explain([s.image for s in batch], names.layer, cache=False).cpu()
        for scene, single in zip(batch, result, strict=True):
            said: Description = describe(single, names, k=k)
            correct += int(single.target == scene.labels[0])
            wanted = _wanted(model, names, said.target_name)
            hits += int(any(wanted(c.name) for c in said.channels))
            own = MARKS[scene.mark] if scene.mark is not None else scene.class_names[0]
            exact += int(any(c.name == own for c in said.channels))
            chances.append(_chance(names, wanted, k))
            counts.update(c.name or "(unnamed)" for c in said.channels)
    return Measurement(
        model=model,
        expected="the corner mark" if model == "shortcut" else "the explained shape",
        scenes=scenes,
        hits=hits,
        rate=hits / scenes,
        exact=exact / scenes,
        chance=sum(chances) / len(chances),
        accuracy=correct / scenes,
        named=len(names.named()),
        top_names=counts.most_common(6),
    )


def main(argv: Sequence[str] | None = None) -> list[Measurement]:
    """Command line: dissect, explain, count; prints a table (and writes JSON on request)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["shapes", "shortcut"])
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--concepts", type=int, default=1000, help="concept scenes to dissect on")
    parser.add_argument("--concept-seed", type=int, default=21)
    parser.add_argument(
        "--marks", type=float, default=0.75, help="P(corner mark) in a one-object concept scene"
    )
    parser.add_argument(
        "--two-objects", type=float, default=0.3, help="P(two objects) in a concept scene"
    )
    parser.add_argument("--scenes", type=int, default=300, help="scenes to explain")
    parser.add_argument("--scene-seed", type=int, default=31)
    parser.add_argument("--k", type=int, default=3, help="top channels per map")
    parser.add_argument("--quantile", type=float, default=0.005)
    parser.add_argument("--iou-threshold", type=float, default=0.04)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--names-dir", type=Path, help="save each model's ChannelNames here")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.concept_seed == args.scene_seed:
        parser.error("--concept-seed and --scene-seed must differ: dissect on held-out data")
    if args.scenes < 1 or args.concepts < 1:
        parser.error("--scenes and --concepts must be positive")
    torch.set_num_threads(args.threads)

    results: list[Measurement] = []
    for model in args.models:
        zoo_model = load(model)
        engine = GradCAM(zoo_model.model, zoo_model.classes, zoo_model.transform)
        names = dissect(
            engine,
            args.layer,
            concepts(
                args.concepts,
                seed=args.concept_seed,
                marks=args.marks,
                two_objects=args.two_objects,
            ),
            quantile=args.quantile,
            iou_threshold=args.iou_threshold,
        )
        if args.names_dir is not None:
            names.save(args.names_dir / f"{model}-{args.layer}.json")
        results.append(measure(model, names, engine, args.scenes, args.scene_seed, k=args.k))

    print(
        f"\ndissected {args.layer} on {args.concepts} concept scenes (seed {args.concept_seed}, "
        f"marks {args.marks}, two objects {args.two_objects}); "
        f"explained {args.scenes} scenes (seed {args.scene_seed}); top-{args.k} channels"
    )
    print(
        f"{'model':<9} {'named ch.':>9} {'accuracy':>8}  {'top-k names':<22} {'rate':>6} "
        f"{'chance':>6}  {'exact':>6}"
    )
    for m in results:
        print(
            f"{m.model:<9} {m.named:>9} {m.accuracy:>8.1%}  {m.expected:<22} {m.rate:>6.1%} "
            f"{m.chance:>6.1%}  {m.exact:>6.1%}"
        )
        frequent = ", ".join(f"{n} x{c}" for n, c in m.top_names)
        print(f"{'':<9} most frequent top-{args.k} names: {frequent}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(m) for m in results], indent=2), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
