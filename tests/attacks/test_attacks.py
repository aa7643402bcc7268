"""FGSM/PGD: bounds, success confirmed by an independent pass, the model left as found."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from camwidgets import GradCAM, zoo
from camwidgets.attacks import AttackResult, NotDifferentiableError, differentiable, fgsm, pgd
from tests.conftest import assert_unchanged, resnet18, small_transform, snapshot, tiny_resnet


def _independent_top1(model: nn.Module, transform: Any, picture: np.ndarray) -> int:
    """The model's top-1 for a float (H, W, 3) picture, through PIL and the transform alone."""
    pil = Image.fromarray(np.round(picture * 255).astype(np.uint8))
    with torch.no_grad():
        return int(model(transform(pil)[None]).argmax(1))


def _check_bounds(res: AttackResult, eps: float) -> None:
    for attacked, clean in zip(res.images, res.original_pictures, strict=True):
        assert attacked.shape == clean.shape and attacked.dtype == np.float32
        assert attacked.min() >= 0.0 and attacked.max() <= 1.0
        assert np.abs(attacked - clean).max() <= eps + 1e-6
        # On the 1/255 grid: what a uint8 picture holds exactly.
        assert np.allclose(attacked * 255, np.round(attacked * 255), atol=1e-4)


@pytest.fixture(scope="module")
def shapes() -> tuple[Any, GradCAM]:
    z = zoo.load("shapes")
    return z, GradCAM(z.model, classes=z.classes, transform=z.transform)


def test_pgd_flips_single_object_scenes_within_the_bound(shapes: tuple[Any, GradCAM]) -> None:
    z, engine = shapes
    pictures = [zoo.make_scene(11, i).image for i in range(16)]
    before = snapshot(z.model)
    res = pgd(engine, pictures, eps=8 / 255, progress=False)
    assert_unchanged(z.model, before)
    _check_bounds(res, 8 / 255)
    assert res.image.shape == (16, 96, 96, 3)
    for i, picture in enumerate(pictures):
        clean = _independent_top1(z.model, z.transform, picture / 255.0)
        assert res.originals[i] == clean
        assert res.predictions[i] == _independent_top1(z.model, z.transform, res.images[i])
    flipped = [p != o for p, o in zip(res.predictions, res.originals, strict=True)]
    assert list(res.success) == flipped
    assert np.mean(flipped) >= 0.9


@pytest.mark.slow
def test_pgd_flips_at_least_90_percent_of_60_scenes(shapes: tuple[Any, GradCAM]) -> None:
    z, engine = shapes
    pictures = [zoo.make_scene(5, i).image for i in range(60)]
    res = pgd(engine, pictures, eps=8 / 255, progress=False)
    _check_bounds(res, 8 / 255)
    confirmed = [
        _independent_top1(z.model, z.transform, res.images[i]) != res.originals[i]
        for i in range(60)
    ]
    assert np.mean(confirmed) >= 0.9


def test_targeted_pgd_reaches_the_named_class(shapes: tuple[Any, GradCAM]) -> None:
    z, engine = shapes
    picture = zoo.make_scene(3, 0, labels=[0]).image  # a circle
    res = pgd(engine, picture, target="star", eps=16 / 255, steps=20, progress=False)
    assert res.target == z.classes.index("star")
    assert res.predicted == _independent_top1(z.model, z.transform, res.image)
    assert res.success == (res.predicted == res.target)
    assert res.success
    assert res.predicted_name == "star"
    _check_bounds(res, 16 / 255)


def test_fgsm_is_one_signed_step_of_eps(shapes: tuple[Any, GradCAM]) -> None:
    z, engine = shapes
    picture = zoo.make_scene(4, 2).image
    res = fgsm(engine, picture, eps=4 / 255, progress=False)
    # Independent FGSM: autograd on the normalised input, chain rule through the normalisation.
    x = torch.from_numpy(picture).permute(2, 0, 1).float().div(255)[None].requires_grad_(True)
    mean = torch.tensor(zoo.scenes.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(zoo.scenes.STD).view(1, 3, 1, 1)
    logits = z.model((x - mean) / std)
    loss = nn.functional.cross_entropy(logits, logits.argmax(1))
    (grad,) = torch.autograd.grad(loss, x)
    expected = (x + 4 / 255 * grad.sign()).clamp(0, 1).detach()[0].permute(1, 2, 0).numpy()
    assert np.abs(res.image - expected).max() <= 0.5 / 255 + 1e-6
    _check_bounds(res, 4 / 255)


def test_resize_and_crop_attack_the_picture_at_its_own_size() -> None:
    model = resnet18(num_classes=10, seed=2)
    transform = small_transform()  # Resize(64) + CenterCrop(64) + ToTensor + Normalize
    engine = GradCAM(model, transform=transform)
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, size=(80, 120, 3), dtype=np.uint8)
    before = snapshot(model)
    res = pgd(engine, picture, eps=8 / 255, steps=5, progress=False)
    assert_unchanged(model, before)
    assert res.image.shape == (80, 120, 3)
    _check_bounds(res, 8 / 255)
    assert res.original == _independent_top1(model, transform, picture / 255.0)
    assert res.predicted == _independent_top1(model, transform, res.image)
    assert res.success == (res.predicted != res.original)


def test_vit_with_random_weights() -> None:
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        mlp_dim=64,
        num_classes=7,
    ).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.5)  # torchvision zero-initialises the head
    transform = transforms.Compose(
        [transforms.Resize(36), transforms.CenterCrop(32), transforms.ToTensor(),
         transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))]
    )  # fmt: skip
    engine = GradCAM(vit, transform=transform)
    pictures = [
        np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in (1, 2)
    ]
    before = snapshot(vit)
    res = pgd(engine, pictures, eps=8 / 255, steps=5, progress=False)
    assert_unchanged(vit, before)
    _check_bounds(res, 8 / 255)
    for i in range(2):
        assert res.predictions[i] == _independent_top1(vit, transform, res.images[i])


def test_weights_preset_transform_is_replayed() -> None:
    preset = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    model = tiny_resnet(seed=1)
    engine = GradCAM(model, transform=preset)
    picture = np.random.default_rng(3).integers(0, 256, (230, 250, 3), dtype=np.uint8)
    res = fgsm(engine, picture, eps=2 / 255, progress=False)
    assert res.image.shape == (230, 250, 3)
    assert res.predicted == _independent_top1(model, preset, res.image)


def test_preprocessed_tensor_is_attacked_in_pixel_space() -> None:
    model = tiny_resnet(seed=0)
    transform = small_transform()
    engine = GradCAM(model, transform=transform)
    picture = Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), np.uint8))
    tensor = transform(picture)
    res = pgd(engine, tensor, eps=4 / 255, steps=3, progress=False)
    clean = np.asarray(picture, dtype=np.float32) / 255
    assert np.abs(res.original_image - clean).max() < 1e-5
    assert np.abs(res.image - clean).max() <= 4 / 255 + 1e-6
    mean, std = torch.tensor((0.5, 0.4, 0.3)), torch.tensor((0.25, 0.2, 0.3))
    attacked = (torch.from_numpy(res.image).permute(2, 0, 1) - mean[:, None, None]) / std[
        :, None, None
    ]
    with torch.no_grad():
        assert res.predicted == int(model(attacked[None]).argmax(1))


def test_batches_of_different_sizes_keep_their_sizes(shapes: tuple[Any, GradCAM]) -> None:
    _, engine = shapes
    small = zoo.make_scene(1, 0).image
    big = np.asarray(Image.fromarray(zoo.make_scene(1, 1).image).resize((120, 110)))
    res = pgd(engine, [small, big], steps=2, progress=False)
    assert isinstance(res.image, list)
    assert res.image[0].shape == (96, 96, 3) and res.image[1].shape == (110, 120, 3)
    assert len(res) == 2 and res[1].image.shape == (110, 120, 3)
    assert [r.original for r in res] == list(res.original)


class _Counting(nn.Module):
    """Counts forwards; raises inside the attack's forward when ``fail`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_resnet(seed=3)
        self.calls = 0
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail and x.requires_grad:
            raise RuntimeError("boom")
        out: torch.Tensor = self.inner(x)
        return out


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": 0.0}, ValueError, "eps must be in"),
        ({"eps": 2.0}, ValueError, "eps must be in"),
        ({"eps": float("nan")}, ValueError, "eps must be in"),
        ({"eps": True}, TypeError, "eps must be a number"),
        ({"steps": 0}, ValueError, "steps must be a positive"),
        ({"step_size": -1.0}, ValueError, "step_size"),
        ({"target": 10}, ValueError, "out of range"),
        ({"target": "zebra"}, ValueError, "not a class name"),
        ({"target": [1, 2]}, ValueError, "2 targets for 1 pictures"),
        ({"target": 1.5}, TypeError, "target must be an integer"),
    ],
)
def test_bad_arguments_fail_before_any_pass(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    model = _Counting()
    engine = GradCAM(model, transform=small_transform())
    calls = model.calls
    with pytest.raises(error, match=match):
        pgd(engine, np.zeros((64, 64, 3), np.uint8), **kwargs)
    assert model.calls == calls


def test_random_or_unknown_transforms_are_refused_clearly() -> None:
    model = tiny_resnet()
    augment = transforms.Compose([transforms.RandomResizedCrop(64), transforms.ToTensor()])
    engine = GradCAM(model, transform=augment)
    with pytest.raises(NotDifferentiableError, match="RandomResizedCrop is random"):
        pgd(engine, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(NotDifferentiableError, match="Lambda is not one"):
        differentiable(transforms.Compose([transforms.Lambda(lambda x: x), transforms.ToTensor()]))
    with pytest.raises(TypeError, match=r"camwidgets\.GradCAM"):
        pgd(model, np.zeros((64, 64, 3), np.uint8))  # type: ignore[arg-type]


def test_model_left_as_found_after_an_exception() -> None:
    model = _Counting()
    engine = GradCAM(model, transform=small_transform())
    model.train()
    model.inner.layer2.eval()  # a mixed state must come back as it was
    for p in model.inner.layer1.parameters():
        p.requires_grad_(False)
    before = snapshot(model)
    model.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        pgd(engine, np.zeros((64, 64, 3), np.uint8), steps=2, progress=False)
    model.fail = False
    assert_unchanged(model, before)
    assert all(p.grad is None for p in model.parameters())


def test_attack_inside_no_grad_and_with_frozen_parameters() -> None:
    model = tiny_resnet(seed=4)
    for p in model.parameters():
        p.requires_grad_(False)
    engine = GradCAM(model, transform=small_transform())
    with torch.no_grad():
        res = fgsm(engine, np.full((64, 64, 3), 120, np.uint8), eps=8 / 255, progress=False)
    assert np.abs(res.perturbation).max() > 0  # a gradient reached the picture
    assert all(p.grad is None for p in model.parameters())


def test_the_engines_own_default_transform_is_replayed() -> None:
    # The default ImageNet preprocessing is camwidgets' torchvision-free copy (engine/preprocess):
    # its steps must replay like torchvision's, to within PIL's vs torch's antialiasing.
    from camwidgets.engine.preprocess import default_transform

    transform = default_transform()
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, size=(240, 300, 3), dtype=np.uint8)
    real = transform(Image.fromarray(picture))
    pictures = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255
    replayed = differentiable(transform)(pictures)[0]
    assert replayed.shape == real.shape == (3, 224, 224)
    assert float((replayed - real).abs().mean()) < 0.05
    reference = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    assert float((differentiable(reference)(pictures)[0] - replayed).abs().max()) < 1e-5
