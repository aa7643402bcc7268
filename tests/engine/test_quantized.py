"""A dynamically quantised model (torch.ao ``quantize_dynamic`` of its Linear head) explains
with the gradient its dequantised weights give, not the zeros torch's missing autograd kernel
would give, and keeps its exact scores and hooks."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from camwidgets import GradCAM
from tests.conftest import SIZE, hook_state, small_transform, tiny_resnet


def quantised() -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantised tensor creation
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(tiny_resnet(seed=4)), {torch.nn.Linear}, dtype=torch.qint8
        )


def test_alpha_of_a_quantised_head_is_its_dequantised_row_over_hw() -> None:
    model = quantised()
    hooks = hook_state(model)
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    engine = GradCAM(model, transform=small_transform())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = engine.explain(image, layer="layer4", target=3)
        with torch.no_grad():
            logits = model(engine.prepare(image).tensor)
    weight = model.fc._weight_bias()[0].dequantize()
    h, w = res.activations.shape[-2:]
    torch.testing.assert_close(res.weights, weight[3] / (h * w), rtol=1e-5, atol=1e-7)
    assert res.score == float(logits[0, 3])  # the quantised output's value, unchanged
    assert float(res.weights.abs().max()) > 0  # not the zeros of the missing kernel
    assert hook_state(model) == hooks
