"""Model conventions met at the door: what a model takes, returns and calls its classes.

``conventions(model, ...)`` reads the model (and the optional ``weights`` or image processor)
and says, for the engine, how to score it, which transform and class names to use by default,
where its maps are and how they lie over the input picture:

- torchvision detection models (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite:
  ``detection``): detections in, per-label best scores as the class view, the maps of the
  backbone (FPN levels one by one), the internal resize + padding undone for the heat map;
- torchvision segmentation models (FCN, DeepLabV3, LR-ASPP: ``segmentation``);
- Hugging Face ``transformers`` image models (``huggingface``): ``.logits``, ``id2label``,
  an image processor as the transform;
- timm models (``timm_cfg``): their ``pretrained_cfg`` as the default transform;
- torchvision weights enums (``weights``): ``W.transforms()`` and ``W.meta["categories"]``.

Nothing here imports ``transformers`` or ``timm`` unless the model comes from them.
"""

from __future__ import annotations

from .base import Conventions, Frame
from .families import conventions

__all__ = ["Conventions", "Frame", "conventions"]
