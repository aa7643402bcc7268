"""Seeded fuzzing of the engine: N calls of every good and bad input family, one table.

Each call is drawn from one of the families in ``tests/engine/fuzzcases.py`` (tensors of every
shape, dtype, layout, device and value; numpy arrays; PIL pictures; garbage, truncated, bomb
and thin files; bad paths; targets; flags; layers and methods; ``k``; constructor arguments)
and run against one engine on a tiny seeded CNN. Every call is classified:

- right: a finite result for a good input, a ValueError/TypeError/FileNotFoundError for a bad one
- wrong exception: any other exception (RuntimeError, IndexError, PIL's errors, ...)
- accepted bad input / refused good input
- non-finite: a result holding NaN or inf
- model changed: any parameter, buffer, grad, flag or hook differs afterwards
- pass before error: a model pass ran although the error was knowable before it

    python benchmarks/fuzz.py                 # 10,000 calls, seed 0
    python benchmarks/fuzz.py --calls 2000 --seed 3 --show 5

Exit status 1 if any call was not "right" or changed the model.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from tests.engine.fuzzcases import FAMILIES, Files, fresh_engine, judge

BAD = ("wrong exception", "accepted bad input", "refused good input", "non-finite")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="examples printed per bad form")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # torch's "sparse CSR is beta" and PIL's notes
    rng = random.Random(args.seed)
    engine = fresh_engine()
    files = Files()
    rows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    examples: dict[tuple[str, str, str], list[str]] = collections.defaultdict(list)
    start = time.perf_counter()
    try:
        for _ in range(args.calls):
            case = rng.choice(FAMILIES)(rng, files)
            outcome = judge(case, engine)
            row = rows[case.family]
            row["calls"] += 1
            row["bad inputs"] += case.bad is True
            row[outcome.verdict] += 1
            row["model changed"] += outcome.model_changed
            row["pass before error"] += outcome.pass_before_error
            wrong = outcome.verdict != "right" or outcome.model_changed or outcome.pass_before_error
            if wrong:
                key = (case.family, case.form, outcome.verdict)
                if len(examples[key]) < args.show:
                    examples[key].append(outcome.detail)
            if engine.cache_info().entries > 64:
                engine.clear_cache()  # keep the run's memory flat; the cache is not under test
    finally:
        files.close()
    elapsed = time.perf_counter() - start
    columns = ["calls", "bad inputs", "right", *BAD, "model changed", "pass before error"]
    width = max(len(f) for f in rows) + 2
    print(
        f"{args.calls:,} seeded calls (seed {args.seed}) in {elapsed:.0f} s, torch "
        f"{torch.__version__}\n"
    )
    print("family".ljust(width) + "".join(c.rjust(max(len(c), 6) + 2) for c in columns))
    total: collections.Counter[str] = collections.Counter()
    for family in sorted(rows):
        total.update(rows[family])
        print(
            family.ljust(width)
            + "".join(str(rows[family][c]).rjust(max(len(c), 6) + 2) for c in columns)
        )
    print("total".ljust(width) + "".join(str(total[c]).rjust(max(len(c), 6) + 2) for c in columns))
    forms = len({(f, form) for f, form, _ in examples})
    failures = sum(total[c] for c in BAD) + total["model changed"] + total["pass before error"]
    print(
        f"\nbad outcomes: {sum(total[c] for c in BAD)} ({forms} distinct forms); "
        f"model changed: {total['model changed']}; pass before error: "
        f"{total['pass before error']}"
    )
    for (family, form, verdict), details in sorted(examples.items()):
        print(f"  {family} / {form} / {verdict}:")
        for detail in details:
            print(f"      {detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
