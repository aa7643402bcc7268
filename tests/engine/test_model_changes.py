"""The cache knows the model: every way of changing weights invalidates what was computed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, resnet18, small_transform
from tests.engine.reference import reference_gradcam

LAYER, TARGET = "layer3", 4


def image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(11))


def in_place_add(model: nn.Module) -> None:
    with torch.no_grad():
        model.layer3[0].conv1.weight.add_(0.05)  # type: ignore[index]


def buffer_in_place(model: nn.Module) -> None:
    with torch.no_grad():
        model.layer3[1].bn2.running_mean.add_(0.5)  # type: ignore[index]


def load_state_dict(model: nn.Module) -> None:
    model.load_state_dict(resnet18(seed=7).state_dict())


def optimizer_step(model: nn.Module) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    loss = model(image()).square().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def adam_foreach_step(model: nn.Module) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, foreach=True)
    model(image()).sum().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def replace_parameter(model: nn.Module) -> None:
    conv = model.layer3[1].conv2  # type: ignore[index]
    conv.weight = nn.Parameter(conv.weight.detach() * -1.0)


def replace_submodule(model: nn.Module) -> None:
    torch.manual_seed(3)
    old = model.layer3[0].conv2  # type: ignore[index]
    model.layer3[0].conv2 = nn.Conv2d(old.in_channels, old.out_channels, 3, padding=1, bias=False)  # type: ignore[index]


def assign_data(model: nn.Module) -> None:
    params = list(model.parameters())
    flat = nn.utils.parameters_to_vector(params)
    nn.utils.vector_to_parameters(flat * 1.1, params)  # rebinds every .data, versions unchanged


def to_double(model: nn.Module) -> None:
    model.double()


CHANGES: list[Callable[[nn.Module], None]] = [
    in_place_add,
    buffer_in_place,
    load_state_dict,
    optimizer_step,
    adam_foreach_step,
    replace_parameter,
    replace_submodule,
    assign_data,
    to_double,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_change_invalidates_cached_maps_and_scores(change: Callable[[nn.Module], None]) -> None:
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    x = image()
    old = engine.explain(x, layer=LAYER, target=TARGET)
    engine.predict(x)
    assert engine.explain(x, layer=LAYER, target=TARGET).cached

    change(model)
    model.eval()

    dtype = next(model.parameters()).dtype
    heat, coarse, alpha, _ = reference_gradcam(model, x.to(dtype), LAYER, TARGET)
    new = engine.explain(x, layer=LAYER, target=TARGET)
    assert not new.cached
    if change is to_double:  # same numbers, now computed in float64 (inputs follow the model)
        assert engine.dtype == torch.float64
    else:
        assert not torch.allclose(new.coarse, old.coarse), "the change must matter for this test"
    tol = {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(new.coarse, coarse.float(), **tol)
    torch.testing.assert_close(new.heatmap, heat.float(), **tol)
    assert new.weights is not None
    torch.testing.assert_close(new.weights, alpha.float(), rtol=1e-4, atol=1e-7)
    # Another class and the counterfactual work on the new graph (no stale-graph error).
    engine.explain(x, layer="layer2", target=TARGET + 1, counterfactual=True)
    with torch.no_grad():
        expected = model(x.to(dtype)).float()
    top = engine.predict(x, k=1)[0]
    assert top.index == int(expected.argmax())  # type: ignore[union-attr]
    assert top.logit == pytest.approx(float(expected.max()), rel=1e-4)  # type: ignore[union-attr]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("change", [in_place_add, load_state_dict, replace_parameter])
def test_change_on_cuda(change: Callable[[nn.Module], None]) -> None:
    model = resnet18().cuda()
    engine = GradCAM(model, transform=small_transform())
    x = image().cuda()
    engine.explain(x, layer=LAYER, target=TARGET)
    change(model)
    model.cuda().eval()
    heat, *_ = reference_gradcam(model, x, LAYER, TARGET)
    new = engine.explain(x, layer=LAYER, target=TARGET)
    assert not new.cached
    torch.testing.assert_close(new.heatmap, heat.cpu(), rtol=1e-3, atol=1e-5)


def test_nothing_changed_keeps_the_cache() -> None:
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    x = image()
    engine.explain(x, target=1)
    with torch.no_grad():
        model(x)  # an eval forward changes nothing
    nn.Linear(3, 3)  # registering parameters elsewhere re-lists, but nothing here changed
    assert engine.explain(x, target=1, counterfactual=True).cached
    assert engine.cache_info().forwards == 1


def test_cam_follows_a_replaced_head() -> None:
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    x = image()
    before = engine.explain(x, layer="layer4", target=2, method="cam")
    model.fc.weight = nn.Parameter(model.fc.weight.detach().flip(0))
    after = engine.explain(x, layer="layer4", target=2, method="cam")
    assert after.weights is not None and before.weights is not None
    torch.testing.assert_close(after.weights, model.fc.weight.detach()[2])
    assert not torch.equal(after.weights, before.weights)


def test_writes_through_data_need_clear_cache() -> None:
    """The documented limit: ``.data`` writes bypass version counters, as for autograd."""
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    x = image()
    engine.explain(x, layer=LAYER, target=TARGET)
    model.layer3[0].conv1.weight.data.mul_(2.0)  # type: ignore[index]
    engine.clear_cache()
    heat, *_ = reference_gradcam(model, x, LAYER, TARGET)
    torch.testing.assert_close(
        engine.explain(x, layer=LAYER, target=TARGET).heatmap, heat, rtol=1e-4, atol=1e-6
    )
