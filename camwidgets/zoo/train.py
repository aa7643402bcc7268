"""Train a zoo model from a seed: ``python -m camwidgets.zoo.train --model shapes --out PATH``.

The shipped weights were made with the defaults and ``--seed 0 --threads 1``; rerunning that
command gives bit-identical tensors (another thread count may round differently). Training
scenes are collection ``seed``; the held-out accuracy printed at the end uses collection
``seed + 1``.

- ``shapes``: one-object scenes plus half as many two-object scenes, cross-entropy against the
  class distribution (one-hot, or 1/2-1/2 for two objects), so the network has seen several
  shapes at once, as in the pointing game. Random flips and quarter turns.
- ``shortcut``: one-object scenes that always carry the correct corner mark; no augmentation,
  which would move the mark.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from camwidgets.zoo.evaluate import accuracy
from camwidgets.zoo.models import SmallResNet
from camwidgets.zoo.registry import build_model, save_weights
from camwidgets.zoo.scenes import MEAN, SHAPE_CLASSES, STD, MarkMode, make_scene

__all__ = ["generate", "main", "train"]


def generate(
    seed: int, n: int, *, n_objects: int = 1, mark: MarkMode = "none", first: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes ``first .. first + n - 1`` as uint8 (N, 3, H, W) images and (N, C) class weights."""
    images = []
    targets = torch.zeros(n, len(SHAPE_CLASSES))
    desc = f"scenes ({n_objects} object{'s' if n_objects > 1 else ''})"
    for row, i in enumerate(tqdm(range(first, first + n), desc=desc, leave=False)):
        scene = make_scene(seed, i, n_objects=n_objects, mark=mark)
        images.append(scene.image)
        targets[row, list(scene.labels)] = 1.0 / n_objects
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return stacked, targets


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random per-image flips and a per-batch quarter turn; none of them changes a class."""
    n = x.shape[0]
    flip_h = torch.rand(n, generator=gen) < 0.5
    flip_v = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(-1), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(-2), x)
    return torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen)), dims=(-2, -1))


def train(
    kind: str,
    seed: int,
    *,
    epochs: int,
    n_train: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    n_val: int = 300,
) -> SmallResNet:
    """Train one zoo model deterministically from ``seed``.

    Args:
        kind: "shapes" or "shortcut".
        seed: seeds both the training scenes and the initial weights.
        epochs: passes over the training set.
        n_train: number of one-object training scenes (``shapes`` adds ``n_train // 2``
            two-object scenes).
        batch_size: images per step.
        lr: peak learning rate (AdamW; 50 warm-up steps, then a cosine decay to zero).
        n_val: held-out scenes (collection ``seed + 1``) scored after each epoch; 0 for none.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if kind == "shapes":
        x1, y1 = generate(seed, n_train)
        x2, y2 = generate(seed, n_train // 2, n_objects=2)
        images, targets = torch.cat([x1, x2]), torch.cat([y1, y2])
        mark: MarkMode = "none"
    elif kind == "shortcut":
        mark = "correct"
        images, targets = generate(seed, n_train, mark=mark)
    else:
        raise ValueError(f"unknown zoo model {kind!r}; available: 'shapes', 'shortcut'")

    # channels_last ran these small convolutions about 25% faster on this CPU.
    model = build_model().to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(images) // batch_size
    total = epochs * steps_per_epoch
    # A short warm-up: a long one (OneCycle's default 30%) wasted most of a short run here.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=total, pct_start=min(0.3, 50 / total), div_factor=10
    )
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    bar = tqdm(total=total, desc=f"train {kind}", unit="step")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = (images[idx].float() / 255 - mean) / std
            # The shortcut mark sits in a fixed corner: rotating or flipping would move it.
            x = _augment(x, gen) if kind == "shapes" else x
            logits = model(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits, targets[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if n_val:
            model.eval()
            acc = accuracy(model, seed + 1, n_val, mark=mark)
            bar.write(f"epoch {epoch + 1}/{epochs}: held-out accuracy {acc:.3f}")
    bar.close()
    model.eval()
    return model.to(memory_format=torch.contiguous_format)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Train a camwidgets zoo model from a seed.")
    parser.add_argument("--model", choices=("shapes", "shortcut"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="where to write the .pt file")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None, help="one-object training scenes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (1 is faster on a busy machine)"
    )
    parser.add_argument("--n-val", type=int, default=300, help="held-out scenes per epoch")
    parser.add_argument("--n-eval", type=int, default=1000, help="held-out scenes at the end")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    defaults = {"shapes": (4, 8000), "shortcut": (2, 4000)}[args.model]
    epochs = args.epochs if args.epochs is not None else defaults[0]
    n_train = args.n_train if args.n_train is not None else defaults[1]

    start = time.perf_counter()
    model = train(
        args.model,
        args.seed,
        epochs=epochs,
        n_train=n_train,
        batch_size=args.batch_size,
        lr=args.lr,
        n_val=args.n_val,
    )
    save_weights(model, args.out)
    print(f"trained in {time.perf_counter() - start:.0f} s; wrote {args.out}")

    # Score the float16-rounded weights, i.e. exactly what was written.
    from camwidgets.zoo.registry import load_weights

    load_weights(model, args.out)
    held_out = args.seed + 1
    if args.model == "shapes":
        acc = accuracy(model, held_out, args.n_eval)
        print(f"held-out accuracy (collection {held_out}, n={args.n_eval}): {acc:.4f}")
    else:
        modes: dict[MarkMode, str] = {"correct": "correct", "swapped": "swapped", "none": "no"}
        for mark, words in modes.items():
            acc = accuracy(model, held_out, args.n_eval, mark=mark)
            print(f"held-out accuracy, {words} marks (n={args.n_eval}): {acc:.4f}")


if __name__ == "__main__":
    main()
