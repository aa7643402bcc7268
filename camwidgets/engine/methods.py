"""The method extension point: what the cache holds for (image, class, layer) -> a map.

A method is one small object: it says what it needs (``needs_gradients``, ``needs_alpha``,
``needs_head``), the engine hands it exactly that in a ``MethodInputs`` (taken from its cache
where possible, so switching between methods that share gradients runs no model pass), and it
returns the signed coarse map on the layer's grid (and channel weights, where the method has
them). The engine applies ReLU and the bilinear resize, and checks the result is finite.

Adding a method::

    class MeanActivation(Method):
        name = "mean-activation"
        supports_counterfactual = False

        def __call__(self, inputs: MethodInputs) -> MethodOutput:
            return MethodOutput(None, inputs.activations.mean(dim=1))

    register_method(MeanActivation())

Names registered here: "gradcam", "cam", "gradcam++", "xgradcam", "hirescam", "layercam",
"eigencam", "scorecam" and "guided-gradcam"; each class below gives its formula and paper.

Example:
    >>> import torch, torchvision
    >>> from camwidgets import GradCAM
    >>> engine = GradCAM(torchvision.models.resnet18(num_classes=3).eval())
    >>> x = torch.randn(1, 3, 64, 64)
    >>> res = engine.explain(x, layer="layer3", target=2, method="gradcam++")
    >>> res.weights.shape, engine.explain(x, layer="layer3", target=2, method="layercam").cached
    (torch.Size([256]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from camwidgets.targets import Target

from .progress import progress_bar


@dataclass(frozen=True)
class ClassScore:
    """The differentiated quantity: ``sign * Y[i, c_i]`` summed over the batch.

    Images in a batch are independent in eval mode, so the gradient of the sum with respect to
    image i's activations is exactly that image's own gradient: one backward serves the batch.
    The counterfactual is ``sign=-1``; since gradients are linear in the target, the engine
    differentiates ``sign=+1`` once and scales, so toggling costs no pass.
    """

    classes: tuple[int, ...]
    sign: float = 1.0

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(self.classes), device=scores.device)
        picked = scores[rows, torch.tensor(self.classes, device=scores.device)]
        return self.sign * picked.sum()


@dataclass(frozen=True)
class MethodInputs:
    """What a method may read for N images, one class each, at one layer.

    Attributes:
        activations: the layer output A, (N, K, h, w) float32, channels first.
        classes: the class (or target object) explained for each image.
        sign: +1, or -1 for the counterfactual (already applied to the fields below).
        layer: the layer's name.
        image: the model input, (N, C, H, W).
        gradients: ``sign * dY_c/dA``, (N, K, h, w) float32, when ``needs_gradients``.
        alpha: ``sign * mean_ij dY_c/dA^k_ij``, (N, K), when ``needs_alpha``.
        head_weight: ``sign * W[c]`` of the pooled linear head, (N, K), when ``needs_head``.
        scores: batch (M, C, H, W) -> raw scores (M, classes), no gradients, eval mode.
        guided: guided-backpropagation gradient of ``sign * Y_c`` with respect to the input,
            (N, C, H, W), when ``needs_guided``.
    """

    activations: torch.Tensor
    classes: tuple[int | Target, ...]
    sign: float
    layer: str
    image: torch.Tensor
    gradients: torch.Tensor | None
    alpha: torch.Tensor | None
    head_weight: torch.Tensor | None
    scores: Callable[[torch.Tensor], torch.Tensor]
    guided: torch.Tensor | None = None


@dataclass(frozen=True)
class MethodOutput:
    """A method's answer: channel weights (N, K) where it has them, and the signed coarse map.

    ``pixels`` is an optional input-resolution factor (N, C, H, W): the engine multiplies it by
    the resized heatmap and returns the product as ``CamResult.guided`` (Guided Grad-CAM).
    """

    weights: torch.Tensor | None
    coarse: torch.Tensor
    pixels: torch.Tensor | None = None


class EngineInfo(Protocol):
    """What a method may ask of the engine to say whether it applies at a layer."""

    @property
    def cam_layers(self) -> list[str]: ...


class Method:
    """Base class of the methods: set the class attributes and implement ``__call__``."""

    name: str = ""
    needs_gradients: bool = False
    needs_alpha: bool = False
    needs_head: bool = False
    needs_guided: bool = False
    memoize: bool = False
    """Keep the output with the cached image, keyed by (name, classes, sign, layer): for
    methods that are expensive (model passes of their own) and deterministic."""
    supports_counterfactual: bool = True
    no_counterfactual: str = "it is class-agnostic"
    classes_only: bool = False
    """Whether the method reads class scores itself (a head row, re-scored inputs), so it is
    defined for class targets only, not for Box, Region or Similarity."""
    """Why the counterfactual is refused, when ``supports_counterfactual`` is False."""

    def unavailable(self, engine: EngineInfo, layer: str) -> str | None:
        """Why the method cannot run at ``layer`` (a sentence), or None when it can."""
        return None

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        raise NotImplementedError


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float64 where the device has it (not MPS), for sums of small powers."""
    return t.float() if t.device.type == "mps" else t.double()


def weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A^k: (N, K) x (N, K, h, w) -> (N, h, w)."""
    return torch.einsum("nk,nkhw->nhw", weights, activations)


class GradCAMMethod(Method):
    """Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391).

    alpha_k = (1 / hw) sum_ij dY_c/dA^k_ij;  coarse = sum_k alpha_k A^k.
    """

    name = "gradcam"
    needs_alpha = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.alpha is not None
        return MethodOutput(inputs.alpha, weighted_sum(inputs.alpha, inputs.activations))


class CAMMethod(Method):
    """CAM (Zhou et al., CVPR 2016, arXiv:1512.04150), for a global-average-pool + linear head.

    alpha_k = W_{c,k}, the head's row for class c; coarse = sum_k W_{c,k} A^k. At the pooled
    layer Grad-CAM's alpha equals W_{c,k} / (h w), so the two maps differ by that factor only.
    """

    name = "cam"
    needs_head = True
    classes_only = True

    def unavailable(self, engine: EngineInfo, layer: str) -> str | None:
        if layer in engine.cam_layers:
            return None
        where = ", ".join(engine.cam_layers) or "no layer: the model has no GAP + linear head"
        return f"CAM is defined only at the pooled layer(s): {where}; got {layer!r}"

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.head_weight is not None
        return MethodOutput(
            inputs.head_weight, weighted_sum(inputs.head_weight, inputs.activations)
        )


class GradCAMPlusPlus(Method):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018, arXiv:1710.11063), the closed form (eq. 19).

    With g = sign * dY_c/dA^k, the gradient of the raw score:

        a^k_ij  = g_ij^2 / (2 g_ij^2 + (sum_ab A^k_ab) g_ij^3)     (0 where g_ij = 0)
        alpha_k = sum_ij a^k_ij ReLU(g_ij);   coarse = sum_k alpha_k A^k

    The paper derives this closed form for the exponential score S_c = exp(Y_c): its higher
    derivatives reduce to powers of g, and its weights carry one more factor exp(Y_c) > 0 per
    image. That factor only scales the map (and overflows float32 for Y_c > 88), so it is left
    out, as pytorch-grad-cam does. The counterfactual uses g of -Y_c.
    """

    name = "gradcam++"
    needs_gradients = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.gradients is not None
        # float64: g^3 of small gradients underflows float32 long before the ratio is small.
        g = _wide(inputs.gradients)
        a = _wide(inputs.activations)
        g2 = g * g
        denominator = 2 * g2 + a.sum(dim=(-2, -1), keepdim=True) * g2 * g
        usable = (g != 0) & (denominator != 0)
        ratio = torch.where(usable, g2 / torch.where(usable, denominator, 1.0), 0.0)
        alpha = (ratio * g.clamp_min(0)).sum(dim=(-2, -1)).float()
        return MethodOutput(alpha, weighted_sum(alpha, inputs.activations))


class XGradCAM(Method):
    """XGrad-CAM (Fu et al., BMVC 2020, arXiv:2008.02312).

    alpha_k = sum_ij (A^k_ij / sum_ab A^k_ab) * g_ij  with g = sign * dY_c/dA^k (alpha_k = 0
    for a channel that sums to 0);  coarse = sum_k alpha_k A^k.
    """

    name = "xgradcam"
    needs_gradients = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.gradients is not None
        a = inputs.activations
        total = a.sum(dim=(-2, -1))
        weighted = (a * inputs.gradients).sum(dim=(-2, -1))
        alpha = torch.where(total != 0, weighted / torch.where(total != 0, total, 1.0), 0.0)
        return MethodOutput(alpha, weighted_sum(alpha, a))


class HiResCAM(Method):
    """HiResCAM (Draelos & Carin, 2020, arXiv:2011.08891): no channel weights.

    coarse_ij = sum_k g^k_ij A^k_ij  with g = sign * dY_c/dA. Where A is followed only by
    global average pooling and a linear head it equals Grad-CAM (and CAM / hw).
    """

    name = "hirescam"
    needs_gradients = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.gradients is not None
        return MethodOutput(None, (inputs.gradients * inputs.activations).sum(dim=1))


class LayerCAM(Method):
    """LayerCAM (Jiang et al., IEEE TIP 2021, doi:10.1109/TIP.2021.3089943): no channel weights.

    coarse_ij = sum_k ReLU(g^k_ij) A^k_ij  with g = sign * dY_c/dA (the counterfactual keeps
    the positions where the gradient of -Y_c is positive).
    """

    name = "layercam"
    needs_gradients = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.gradients is not None
        return MethodOutput(None, (inputs.gradients.clamp_min(0) * inputs.activations).sum(dim=1))


class EigenCAM(Method):
    """Eigen-CAM (Muhammad & Yeasin, IJCNN 2020, arXiv:2008.00299): class-agnostic.

    With the activations as an (hw x K) matrix M = U S V^T (not centred), the map is the
    projection on the first right singular vector: coarse = M v_1, i.e. channel weights
    alpha = v_1. A singular vector's sign is arbitrary; it is fixed so the map sums to >= 0
    (for non-negative activations v_1 >= 0 and the map is >= 0). No gradients, no class: the
    same map for every target, and no counterfactual.
    """

    name = "eigencam"
    supports_counterfactual = False
    no_counterfactual = "it is class-agnostic (the first principal direction of A has no class)"

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        a = inputs.activations
        n, k, h, w = a.shape
        matrix = _wide(a).reshape(n, k, h * w).transpose(1, 2)  # (N, hw, K)
        _, _, vh = torch.linalg.svd(matrix, full_matrices=False)
        v1 = vh[:, 0, :]  # (N, K)
        projection = torch.einsum("npk,nk->np", matrix, v1)
        flip = torch.where(projection.sum(dim=1) < 0, -1.0, 1.0).to(v1.dtype)
        alpha = (v1 * flip[:, None]).float()
        return MethodOutput(alpha, weighted_sum(alpha, a))


class ScoreCAM(Method):
    """Score-CAM (Wang et al., CVPR workshops 2020, arXiv:1910.01279), as the authors' code does.

    For each channel k: H^k = the activation A^k bilinearly resized to the input and min-max
    normalised to [0, 1]; the input masked by it, X * H^k, goes through the model:

        alpha_k = softmax(f(X * H^k))_c;   coarse = sum_k alpha_k A^k

    (alpha_k = 0, and no forward, for a channel that is constant over the grid). The paper's
    "increase of confidence" also subtracts f(X_b) of a baseline; the authors' released code,
    torchcam and pytorch-grad-cam all leave it out, and so does this method. No gradients: the
    K masked forwards per image run in batches of ``batch_size`` without autograd, off the
    engine's gradient cache; the result is kept with the cached image (``memoize``), so coming
    back to Score-CAM for the same (image, class, layer) costs nothing. The counterfactual is
    refused: the weights are probabilities, not gradients, so -alpha would only give an empty
    map.

    Args:
        batch_size: masked images per forward.
        progress: a progress bar: None shows one when the run takes more than a second.

    Example:
        >>> engine.explain(image, method=ScoreCAM(batch_size=16, progress=False))  # doctest: +SKIP
    """

    name = "scorecam"
    memoize = True
    classes_only = True
    supports_counterfactual = False
    no_counterfactual = "its weights are softmax probabilities of masked inputs, not gradients"

    def __init__(self, batch_size: int = 32, progress: bool | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None, got {progress!r}")
        self.batch_size = batch_size
        self.progress = progress

    def __repr__(self) -> str:
        return f"ScoreCAM(batch_size={self.batch_size}, progress={self.progress})"

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        a = inputs.activations
        n, k = a.shape[:2]
        size = tuple(inputs.image.shape[-2:])
        low = a.amin(dim=(-2, -1))
        high = a.amax(dim=(-2, -1))
        jobs = (high > low).nonzero()  # (J, 2) rows of (image, channel), constant ones skipped
        alpha = torch.zeros(n, k, device=a.device, dtype=torch.float32)
        classes = torch.tensor(inputs.classes, device=a.device)
        bar = progress_bar(len(jobs), "Score-CAM", self.progress, unit="mask")
        try:
            for first in range(0, len(jobs), self.batch_size):
                chunk = jobs[first : first + self.batch_size]
                image, channel = chunk[:, 0], chunk[:, 1]
                up = F.interpolate(
                    a[image, channel].unsqueeze(1),
                    size=size,
                    mode="bilinear",
                    align_corners=False,
                )
                lo = up.amin(dim=(-2, -1), keepdim=True)
                span = up.amax(dim=(-2, -1), keepdim=True) - lo
                masks = (up - lo) / span.clamp_min(torch.finfo(up.dtype).tiny)
                masked = inputs.image[image] * masks.to(inputs.image.dtype)
                probabilities = inputs.scores(masked).float().softmax(dim=1)
                rows = torch.arange(len(chunk), device=probabilities.device)
                picked = probabilities[rows, classes[image].to(probabilities.device)]
                alpha[image, channel] = picked.to(alpha.device)
                bar.update(len(chunk))
        finally:
            bar.close()
        return MethodOutput(alpha, weighted_sum(alpha, a))


class GuidedGradCAM(GradCAMMethod):
    """Guided Grad-CAM (Selvaraju et al., ICCV 2017): guided backpropagation times Grad-CAM.

    ``heatmap`` is the Grad-CAM heatmap; ``CamResult.guided`` is G * heatmap (broadcast over
    the input channels), where G is the guided-backpropagation gradient of ``sign * Y_c`` with
    respect to the input (see ``camwidgets.engine.guided``: only ``nn.ReLU`` modules are guided).
    It costs one extra forward and backward per (image, class, sign), cached by the engine.
    """

    name = "guided-gradcam"
    needs_guided = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        base = super().__call__(inputs)
        assert inputs.guided is not None
        return MethodOutput(base.weights, base.coarse, pixels=inputs.guided)


METHODS: dict[str, Method] = {}
"""Registered methods by name, in registration order."""


def register_method(method: Method) -> Method:
    """Make ``method`` available to ``GradCAM.explain(..., method=method.name)``."""
    if not isinstance(method, Method) or not method.name:
        raise TypeError("register_method takes a Method instance with a non-empty name")
    METHODS[method.name] = method
    return method


def get_method(name: object) -> Method:
    """The registered method called ``name`` (a Method instance is returned as is), or a
    ValueError listing the names."""
    if isinstance(name, Method):
        if not name.name:
            raise TypeError("a Method passed as method= needs a non-empty name")
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"method must be a name (str) or a Method instance, got {type(name).__name__}"
        )
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return method


register_method(GradCAMMethod())
register_method(CAMMethod())
register_method(GradCAMPlusPlus())
register_method(XGradCAM())
register_method(HiResCAM())
register_method(LayerCAM())
register_method(EigenCAM())
register_method(ScoreCAM())
register_method(GuidedGradCAM())
