"""Questions beyond classes: a detector's detections, a concept's vector, an image's embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from camwidgets.adapters.detection import detections_of
from camwidgets.targets import Detection

from .forward import ForwardRecorder
from .inputs import ImageLike, Prepared
from .locks import serialized


class TaskQueries(ForwardRecorder):
    """``detect`` and ``embedding``: what a target is made from."""

    @property
    def kind(self) -> str:
        """The model family's task: "classifier", "detector" or "segmenter"."""
        return self._conventions.kind

    @serialized
    def detect(
        self, image: ImageLike | Sequence[ImageLike] | Prepared
    ) -> list[Detection] | list[list[Detection]]:
        """The detector's detections, highest score first; a list per image for a batch.

        Each ``Detection`` has ``.box`` (x0, y0, x1, y1) in the input picture's pixels (the
        model input's, which is the picture itself under a detector's default transform),
        ``.label``, ``.name``, ``.score`` and ``.rank``, and is a target:
        ``engine.explain(image, target=detection)``. The forward is cached with the image, so
        explaining a detection afterwards runs only its backward.

        Example:
            >>> import torch
            >>> from torchvision.models.detection import FasterRCNN
            >>> from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
            >>> from camwidgets import GradCAM
            >>> torch.manual_seed(0) and None
            >>> bb = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
            >>> engine = GradCAM(FasterRCNN(bb, num_classes=3, min_size=96, max_size=128))
            >>> found = engine.detect(torch.rand(3, 80, 100))
            >>> found[0].score >= found[-1].score
            True
        """
        if self.kind != "detector":
            raise TypeError(
                "detect() needs a detection model (torchvision Faster/Mask/Keypoint R-CNN, "
                f"RetinaNet, FCOS, SSD); this engine's model is a {self.kind}"
            )
        self._follow_model()
        prepared = self.prepare(image)
        entry = self._entry(prepared)
        per_image = []
        for det in detections_of(entry.output):
            boxes = det["boxes"].detach().float().cpu()
            labels = det["labels"].detach().cpu().tolist()
            scores = det["scores"].detach().float().cpu()
            order = torch.argsort(scores, descending=True, stable=True).tolist()
            # Boxes of zero width or height (clipped at the border) are no Box: left out, and
            # ranks count the detections listed.
            kept = [j for j in order if boxes[j, 2] > boxes[j, 0] and boxes[j, 3] > boxes[j, 1]]
            per_image.append(
                [
                    Detection(
                        tuple(float(v) for v in boxes[j]),  # type: ignore[arg-type]
                        int(labels[j]),
                        name=self._name(int(labels[j])),
                        score=float(scores[j]),
                        rank=rank,
                    )
                    for rank, j in enumerate(kept)
                ]
            )
        return per_image if prepared.batched else per_image[0]

    @serialized
    def embedding(self, image: ImageLike | Sequence[ImageLike] | Prepared) -> torch.Tensor:
        """The model's output vector for an image, (D,) (or (N, D) for a batch), on the CPU:
        ``Similarity(engine.embedding(other))`` explains what makes an image like ``other``."""
        self._follow_model()
        prepared = self.prepare(image)
        scores: torch.Tensor = self._entry(prepared).scores.detach().float().cpu()
        return scores if prepared.batched else scores[0]

    def _name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)
