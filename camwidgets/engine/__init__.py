"""The Grad-CAM engine: torch and numpy only, never widget or plotting code."""

from .gradcam import GradCAM
from .guided import UnguidedReLUWarning, guided_gradients
from .inputs import Prepared
from .methods import (
    METHODS,
    Method,
    MethodInputs,
    MethodOutput,
    ScoreCAM,
    get_method,
    register_method,
)
from .preprocess import default_transform
from .result import CacheInfo, CamResult, Prediction

__all__ = [
    "METHODS",
    "CacheInfo",
    "CamResult",
    "GradCAM",
    "Method",
    "MethodInputs",
    "MethodOutput",
    "Prediction",
    "Prepared",
    "ScoreCAM",
    "UnguidedReLUWarning",
    "default_transform",
    "get_method",
    "guided_gradients",
    "register_method",
]
