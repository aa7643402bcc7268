"""The Grad-CAM engine: torch and numpy only, never widget or plotting code."""

from .gradcam import GradCAM
from .inputs import Prepared, default_transform
from .result import CacheInfo, CamResult, Prediction

__all__ = ["CacheInfo", "CamResult", "GradCAM", "Prediction", "Prepared", "default_transform"]
