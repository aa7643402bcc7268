"""Several threads, one engine (or two engines on one model): right maps, model untouched."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot
from tests.engine.reference import reference_gradcam

LAYERS = ("layer1", "layer2.0.bn2", "layer3", "layer4")


def images(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(21)
    return [torch.randn(1, 3, SIZE, SIZE, generator=generator) for _ in range(count)]


def run_threads(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def wrap(work: Callable[[], None]) -> None:
        try:
            start.wait()
            work()
        except BaseException as err:  # reported to the test below
            errors.append(err)

    threads = [threading.Thread(target=wrap, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("engines", [1, 2])
def test_threads_get_correct_maps_and_leave_a_training_model_alone(
    engines: int, device: str
) -> None:
    model = resnet18().to(device).train()  # train mode: BN would update its statistics in it
    model.layer2.eval()  # a mixed state must come back exactly as it was
    made = [GradCAM(model, transform=small_transform()) for _ in range(engines)]
    before = snapshot(model)
    pictures = [p.to(device) for p in images(4)]
    jobs = [
        (i % len(pictures), LAYERS[(i // 2) % len(LAYERS)], i % 10, i % 3 == 0) for i in range(32)
    ]
    results: dict[int, torch.Tensor] = {}
    predictions: dict[int, int] = {}

    def worker(offset: int) -> Callable[[], None]:
        def work() -> None:
            engine = made[offset % engines]
            for j in range(offset, len(jobs), 4):
                picture, layer, target, counterfactual = jobs[j]
                res = engine.explain(
                    pictures[picture], layer=layer, target=target, counterfactual=counterfactual
                )
                results[j] = res.heatmap
                top = engine.predict(pictures[picture], k=1)[0]
                predictions[j] = top.index  # type: ignore[union-attr]
                with pytest.raises(ValueError):
                    engine.explain(pictures[picture], target=99)

        return work

    errors = run_threads([worker(k) for k in range(4)])
    assert errors == []
    assert_unchanged(model, before)
    assert [m.training for m in model.modules()] == [t for _, t in before["training"]]  # type: ignore[union-attr]
    wrong = 0
    for j, (picture, layer, target, counterfactual) in enumerate(jobs):
        sign = -1.0 if counterfactual else 1.0
        heat, *_ = reference_gradcam(model, pictures[picture], layer, target, sign)
        tol = {"rtol": 1e-4, "atol": 1e-6} if device == "cpu" else {"rtol": 1e-3, "atol": 1e-5}
        if not torch.allclose(results[j], heat.cpu(), **tol):
            wrong += 1
        with torch.no_grad():
            was = [(m, m.training) for m in model.modules()]
            model.eval()
            expected = int(model(pictures[picture]).argmax())
            for m, flag in was:
                m.training = flag
        assert predictions[j] == expected
    assert wrong == 0, f"{wrong} of {len(jobs)} maps differ from the reference"
    assert_unchanged(model, before)


def test_model_lock_is_shared_and_reentrant() -> None:
    from camwidgets.engine.locks import model_lock

    model: nn.Module = resnet18()
    a = GradCAM(model, transform=small_transform())
    b = GradCAM(model, transform=small_transform())
    assert a._lock is b._lock is model_lock(model)
    with a._lock:  # an engine call made while the caller holds the lock does not deadlock
        assert a.explain(images(1)[0], target=1).heatmap.shape == (SIZE, SIZE)
