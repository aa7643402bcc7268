"""The training command runs end to end (tiny settings) and writes loadable weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camwidgets.zoo import train as train_module
from camwidgets.zoo.registry import build_model, load_weights


def test_generate_targets() -> None:
    images, targets = train_module.generate(0, 4, n_objects=2)
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 96, 96)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    assert ((targets == 0.5).sum(1) == 2).all()


@pytest.mark.parametrize("kind", ["shapes", "shortcut"])
def test_train_cli_smoke(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{kind}.pt"
    args = ["--model", kind, "--seed", "3", "--out", str(out), "--epochs", "1", "--n-train", "32"]
    args += ["--batch-size", "16", "--n-eval", "20", "--n-val", "0"]
    # main() sets the thread count globally: keep the session's.
    train_module.main([*args, "--threads", str(torch.get_num_threads())])
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed
    model = build_model()
    load_weights(model, out)
    assert all(p.dtype == torch.float32 for p in model.parameters())
