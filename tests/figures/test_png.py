"""The picture's PNG encoding is lossless."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from camwidgets.figures import png_data_uri


def test_png_round_trips_through_pil() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    uri = png_data_uri(rgb)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))))
    np.testing.assert_array_equal(decoded, rgb)


def test_png_rejects_other_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        png_data_uri(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        png_data_uri(np.zeros((4, 4), np.uint8))
