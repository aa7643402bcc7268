"""``--model`` specifications -> a model, its class names and its preprocessing.

Accepted: ``zoo:shapes`` / ``zoo:shortcut`` (the teaching models that ship),
``torchvision:NAME[:WEIGHTS]`` (a torchvision architecture; its weights from torch hub's cache,
downloaded only when asked), ``hf:PATH`` (a Hugging Face model directory written by
``save_pretrained``, with its image processor if saved beside it) and a file written by
``torch.save(model)`` (detectors, segmenters and timm models get their own preprocessing).
"""

from __future__ import annotations

import difflib
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camwidgets.cli.errors import UsageError

if TYPE_CHECKING:  # imported where used: `camwidgets --help` reads MODEL_HELP, without torch
    import torch
    from torch import nn

ZOO_PREFIX = "zoo:"
TORCHVISION_PREFIX = "torchvision:"
HF_PREFIX = "hf:"
MODEL_HELP = (
    "zoo:shapes, zoo:shortcut, torchvision:NAME[:WEIGHTS] (e.g. torchvision:resnet50), "
    "hf:PATH (a Hugging Face model directory) or a file saved with torch.save(model)"
)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the engine, and what the user should be told about it.

    Attributes:
        model: the network, in eval mode, on the CPU.
        classes: class names, or None for "0".."N-1".
        transform: PIL image -> normalised (C, H, W) tensor.
        label: how to name the model in the output.
        zoo: a teaching model trained on 96x96 synthetic scenes.
        notes: warnings for stderr (random weights, loading a pickle).
        files: files the model was read from (never to be overwritten).
    """

    model: nn.Module
    classes: list[str] | None
    transform: Callable[[Any], torch.Tensor]
    label: str
    zoo: bool = False
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())


def load_model(
    spec: str, *, download: bool = False, classes_file: str | None = None, size: int = 224
) -> LoadedModel:
    """Load the model named by ``spec``.

    Args:
        spec: see the module docstring; bare ``shapes`` / ``shortcut`` mean the zoo models.
        download: for ``torchvision:``, fetch missing weights through torch hub.
        classes_file: a text file with one class name per line (overrides the model's names).
        size: input side of the ImageNet-style preprocessing used for model files.

    Raises:
        UsageError: unknown name, missing or unusable file, a state_dict instead of a model.
    """
    from camwidgets.zoo.registry import DESCRIPTIONS

    if spec.startswith(ZOO_PREFIX) or (spec in DESCRIPTIONS and not os.path.exists(spec)):
        loaded = _zoo(spec.removeprefix(ZOO_PREFIX))
    elif spec.startswith(TORCHVISION_PREFIX):
        loaded = _torchvision(spec.removeprefix(TORCHVISION_PREFIX), download)
    elif spec.startswith(HF_PREFIX):
        loaded = _huggingface(spec.removeprefix(HF_PREFIX))
    elif os.path.exists(spec):
        loaded = _from_file(spec, size)
    else:
        raise UsageError(f"--model {spec!r} is neither a known model nor a file; use {MODEL_HELP}")
    if classes_file is None:
        return loaded
    names = _read_classes(classes_file)
    notes = loaded.notes
    return LoadedModel(
        loaded.model,
        names,
        loaded.transform,
        loaded.label,
        loaded.zoo,
        notes,
        (*loaded.files, classes_file),
    )


def _zoo(name: str) -> LoadedModel:
    """A shipped teaching model."""
    from camwidgets import zoo
    from camwidgets.zoo.registry import DESCRIPTIONS

    if name not in DESCRIPTIONS:
        known = ", ".join(f"zoo:{n}" for n in DESCRIPTIONS)
        raise UsageError(f"unknown zoo model {name!r}; available: {known}")
    bundle = zoo.load(name)
    return LoadedModel(
        bundle.model, bundle.classes, bundle.transform, f"zoo:{name}", zoo=True, notes=()
    )


def _torchvision(spec: str, download: bool) -> LoadedModel:
    """A torchvision architecture with cached (or downloaded, or else random) weights."""
    import torchvision

    from camwidgets.zoo.torchvision_models import (
        checkpoint_path,
        pil_transform,
        torchvision_model,
    )

    name, _, weights_name = spec.partition(":")
    weights_name = weights_name or "DEFAULT"
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown torchvision classification model {name!r}{hint} "
            "(torchvision.models.list_models() lists them)"
        )
    enum: Any = torchvision.models.get_model_weights(name)
    try:
        member = enum[weights_name]
    except KeyError:
        names = ", ".join(enum.__members__)
        raise UsageError(
            f"unknown weights {weights_name!r} for {name}; available: {names}"
        ) from None
    path = checkpoint_path(name, member)
    label = f"torchvision:{name} ({member})"
    if os.path.isfile(path) or download:
        try:
            bundle = torchvision_model(name, member)
        except RuntimeError as err:  # no network and no cached file, or an unreadable file
            raise UsageError(f"could not load the weights of {name}: {err}") from err
        return LoadedModel(
            bundle.model, bundle.classes, bundle.transform, label, notes=(), files=(path,)
        )
    model = torchvision.models.get_model(name, weights=None).eval()
    note = (
        f"no cached weights for {name} at {path}: using RANDOM weights, so the predictions and "
        f"maps below mean nothing. Pass --download to fetch {member}, or put {member.url} "
        "at that path (torch.hub.get_dir()/checkpoints; TORCH_HOME moves it)."
    )
    classes = list(member.meta["categories"])
    transform = pil_transform(member.transforms())
    return LoadedModel(
        model, classes, transform, f"torchvision:{name} (random weights)", notes=(note,)
    )


def _from_file(path: str, size: int) -> LoadedModel:
    """A whole model saved with ``torch.save(model)``; TorchScript and state_dicts explained."""
    import torch
    from torch import nn

    from camwidgets.engine.preprocess import default_transform

    if os.path.isdir(path):
        raise UsageError(f"--model {path!r} is a directory; give a .pt file")
    if _is_torchscript(path):
        raise UsageError(
            f"{path} is a TorchScript archive (torch.jit.save). Grad-CAM reads a layer's output "
            "and gradient through forward hooks, which TorchScript modules do not support; "
            "save the Python model instead with torch.save(model, 'model.pt') and pass that file"
        )
    if not _is_torch_save(path):
        raise UsageError(f"{path} is not a file written by torch.save (nor a TorchScript archive)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        content = None  # holds Python objects (a pickled module): loaded below, with a warning
    except Exception as err:  # a damaged file can fail anywhere inside the unpickler
        raise UsageError(f"{path} could not be read by torch.load ({_first_line(err)})") from err
    if content is not None:
        raise UsageError(_not_a_module(path, content))
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError, ImportError) as err:
        raise UsageError(
            f"{path} is a pickled model whose class cannot be imported here ({err}); run "
            "camwidgets where the module defining that class is importable (e.g. PYTHONPATH)"
        ) from err
    except Exception as err:
        raise UsageError(f"{path} could not be read by torch.load ({_first_line(err)})") from err
    if not isinstance(model, nn.Module):
        raise UsageError(_not_a_module(path, model))
    model.eval()
    note = (
        f"{path}: a pickled nn.Module (torch.save(model)); unpickling runs code stored in the "
        "file, so load only files you trust"
    )
    from camwidgets.adapters import conventions

    met = conventions(model)
    if met.transform is not None:  # a detector, segmenter, timm or HF model: its own
        own = f"preprocessing for {path}: the model's own ({met.kind}, {type(model).__name__})"
        return LoadedModel(
            model,
            None,
            met.transform,
            f"{path} (pickled {type(model).__name__})",
            notes=(note, own),
            files=(path,),
        )
    notes = (
        note,
        f"preprocessing for {path}: ImageNet's (resize to {round(size * 256 / 224)}, centre crop "
        f"{size}, ImageNet mean/std); --size changes the side",
    )
    return LoadedModel(
        model,
        None,
        default_transform(size),
        f"{path} (pickled nn.Module)",
        notes=notes,
        files=(path,),
    )


def _huggingface(path: str) -> LoadedModel:
    """A Hugging Face image classifier saved with ``save_pretrained`` (no download: local)."""
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(
            f"--model hf:{path}: expected a directory written by save_pretrained (with "
            "config.json); models are not downloaded"
        )
    try:
        import transformers
    except ImportError:
        raise UsageError(
            'hf: models need the transformers package: pip install "camwidgets[transformers]"'
        ) from None
    from camwidgets.adapters import conventions

    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(
            path, local_files_only=True
        ).eval()
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"--model hf:{path} could not be loaded ({_first_line(err)})") from err
    processor: Any = None
    notes: tuple[str, ...] = ()
    if os.path.isfile(os.path.join(path, "preprocessor_config.json")):
        processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True)
    met = conventions(model, transform=processor)
    if processor is None:
        notes = (
            f"hf:{path} has no preprocessor_config.json: pictures are resized to the config's "
            "image_size with ImageNet mean/std (save the image processor beside the model)",
        )
    from camwidgets.engine.inputs import default_transform

    return LoadedModel(
        model,
        None,
        met.transform if met.transform is not None else default_transform(),
        f"hf:{path} ({type(model).__name__})",
        notes=notes,
        files=(path,),
    )


def _is_torch_save(path: str) -> bool:
    """torch.save writes a zip holding ``data.pkl``, or (before torch 1.6) a raw pickle."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    with open(path, "rb") as file:
        return file.read(1) == b"\x80"  # the pickle protocol opcode


def _first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_torchscript(path: str) -> bool:
    """TorchScript archives are zips with a ``code/`` folder, which torch.save never writes."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(
            "/code/" in name or name.endswith("constants.pkl") for name in archive.namelist()
        )


def _not_a_module(path: str, content: object) -> str:
    """Why a loaded object is not usable as a model, and what to do instead."""
    import torch

    if isinstance(content, Mapping):
        tensors = [k for k, v in content.items() if isinstance(v, torch.Tensor)]
        nested = [k for k, v in content.items() if isinstance(v, Mapping)]
        if tensors or nested:
            keys = ", ".join(map(str, (tensors or nested)[:3]))
            return (
                f"{path} holds a state_dict or checkpoint (keys {keys}, ...): weights without the "
                "architecture. Build the model in Python, load the weights "
                "(model.load_state_dict(...)) and either use camwidgets.GradCAM(model) or save "
                "the whole model with torch.save(model, 'model.pt') for this command"
            )
    return f"{path} holds a {type(content).__name__}, not a torch.nn.Module"


def _read_classes(path: str) -> list[str]:
    """One class name per non-empty line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"--classes {path!r} is not UTF-8 text ({err})") from err
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UsageError(f"--classes {path!r} holds no class names (one per line expected)")
    return names
