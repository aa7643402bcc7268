"""A gallery of audited images, outliers first (or the mistakes, by pattern); a click opens one
in the Explorer panel.

Each card shows the picture with its stored map blended in, the explained class and the
distance to the class average (see :mod:`camwidgets.audit.results`); "open" shows that image in
an :class:`~camwidgets.widgets.explorer.Explorer` below the cards, where layers, classes and
channels can be explored on the live model. With ``show="mistakes"`` the cards are the images
whose prediction differs from their label, grouped by where the maps of the predicted and the
true class lie (``Audit.mistake_patterns``), the most frequent pattern first.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
from PIL import Image

from ..audit.report import picture
from ..audit.results import Audit, upsample
from ..audit.sources import Source
from .explorer import Explorer

__all__ = ["Gallery", "thumbnail"]


def thumbnail(pixels: np.ndarray, coarse: np.ndarray, side: int = 128) -> bytes:
    """PNG bytes of a picture with ReLU(coarse) blended in red (scaled to its own maximum)."""
    heat = upsample(np.maximum(coarse.astype(np.float64), 0.0), *pixels.shape[:2])
    top = heat.max()
    scaled = heat / top if top > 0 else heat
    red = np.zeros(pixels.shape, dtype=np.float64)
    red[..., 0] = 255.0
    weight = 0.6 * scaled[..., None]
    blend = pixels.astype(np.float64) * (1 - weight) + red * weight
    image = Image.fromarray(blend.clip(0, 255).round().astype(np.uint8))
    image = image.resize(
        (side, round(side * pixels.shape[0] / pixels.shape[1])), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Gallery:
    """Audit rows as cards, furthest from their class average first; "open" explores one.

    Args:
        audit: an :class:`~camwidgets.audit.Audit` or the folder an audit was written to.
        explorer: the Explorer to open images in; by default one on the audit's zoo model
            (give one for your own model: ``Gallery(path, Explorer(model, classes, transform))``).
        source: the audited data, when the audit cannot find the pictures by itself (torch
            datasets and loaders).
        count: how many cards.
        per_row: cards per row.
        show: "outliers" (furthest from their class average first) or "mistakes" (wrong
            predictions, grouped by pattern).

    Example:
        >>> from camwidgets.widgets.gallery import Gallery
        >>> Gallery("audit.parquet")   # doctest: +SKIP
    """

    def __init__(
        self,
        audit: Audit | str | Path,
        explorer: Explorer | None = None,
        source: Source | None = None,
        count: int = 12,
        per_row: int = 4,
        show: str = "outliers",
    ) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        if show not in ("outliers", "mistakes"):
            raise ValueError(f"show must be 'outliers' or 'mistakes', got {show!r}")
        self.audit = audit if isinstance(audit, Audit) else Audit(audit, source=source)
        if source is not None:
            self.audit.source = source
        self._explorer = explorer
        self.show = show
        self._size = (
            int(self.audit.table.column("input_h")[0].as_py()) if len(self.audit) else 1,
            int(self.audit.table.column("input_w")[0].as_py()) if len(self.audit) else 1,
        )
        self.buttons: dict[str, widgets.Button] = {}
        if show == "outliers":
            self.rows = self.audit.outliers(count)
            cards = [
                self._card(str(item_id), int(position), f"{_escape(str(name))}, d={distance:.2f}")
                for position, item_id, name, distance in zip(
                    self.rows.index,
                    self.rows["id"],
                    self.rows["target_name"],
                    self.rows["distance"],
                    strict=True,
                )
            ]
            header = widgets.HTML(
                f"<b>{len(cards)} of {len(self.audit)} images</b>, furthest from their "
                "class-average map first (d: share of the map's mass away from where the class "
                "usually looks)"
            )
            blocks: list[widgets.Widget] = [header, self._grid(cards, per_row)]
        else:
            blocks = self._mistake_blocks(count, per_row)
        self.output = widgets.Output()
        self.opened: str | None = None
        self.root = widgets.VBox([*blocks, self.output])

    def _card(self, item_id: str, position: int, text: str) -> widgets.VBox:
        """One card: the picture with its stored map, a caption and an "open" button."""
        button = widgets.Button(description="open", tooltip=f"open {item_id} in the explorer",
                                layout=widgets.Layout(width="128px"))  # fmt: skip
        button.on_click(lambda _b, i=item_id: self.open(i))
        self.buttons[item_id] = button
        parts: list[widgets.Widget] = []
        try:
            pixels = picture(self.audit.image(item_id), self._size)
            parts.append(
                widgets.Image(value=thumbnail(pixels, self.audit.coarse[position]), format="png")
            )
        except (ValueError, KeyError, OSError):
            parts.append(widgets.HTML("<i>picture unavailable</i>"))
        parts += [widgets.HTML(f"<b>{_escape(item_id)[-24:]}</b><br>{text}"), button]
        return widgets.VBox(parts, layout=widgets.Layout(width="140px"))

    @staticmethod
    def _grid(cards: list[widgets.VBox], per_row: int) -> widgets.GridBox:
        """Cards in rows of ``per_row``."""
        return widgets.GridBox(
            cards, layout=widgets.Layout(grid_template_columns=f"repeat({per_row}, 145px)")
        )

    def _mistake_blocks(self, count: int, per_row: int) -> list[widgets.Widget]:
        """A header, then per pattern its sentence and up to ``count`` cards."""
        ids = [str(i) for i in self.audit.table.column("id").to_pylist()]
        position = {item_id: i for i, item_id in enumerate(ids)}
        mistakes = {m.id: m for m in self.audit.mistakes()}
        self.patterns = self.audit.mistake_patterns()
        blocks: list[widgets.Widget] = [
            widgets.HTML(
                f"<b>{len(mistakes)} of {len(self.audit)} images are mistakes</b> (prediction "
                "differs from the label), grouped by where the maps of the predicted and the "
                "true class lie; cards show the stored map"
            )
        ]
        for pattern in self.patterns:
            cards = [
                self._card(
                    item_id,
                    position[item_id],
                    f"{_escape(mistakes[item_id].label)} → "
                    f"<b>{_escape(mistakes[item_id].predicted)}</b>",
                )
                for item_id in pattern.ids[:count]
            ]
            blocks.append(
                widgets.HTML(f"<p><b>{pattern.count}×</b> {_escape(pattern.pattern)}</p>")
            )
            blocks.append(self._grid(cards, per_row))
        return blocks

    @property
    def explorer(self) -> Explorer:
        """The Explorer images open in (built on the audit's zoo model on first use)."""
        if self._explorer is None:
            name = self.audit.config.get("model_name")
            if name not in ("shapes", "shortcut"):
                raise ValueError(
                    f"the audit's model ({name}) is not a zoo model: give Gallery an explorer="
                    "Explorer(model, classes, transform)"
                )
            from ..zoo import load

            bundle = load(str(name))
            self._explorer = Explorer(
                bundle.model, classes=bundle.classes, transform=bundle.transform
            )
        return self._explorer

    def open(self, item_id: str) -> None:
        """Show the image ``item_id`` in the Explorer under the cards."""
        image = self.audit.image(item_id)
        self.opened = item_id
        with self.output:
            self.output.clear_output(wait=True)
            self.explorer.show(image)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = self.root._repr_mimebundle_(**kwargs)
        return bundle


def _escape(text: str) -> str:
    """HTML-escape a label."""
    import html

    return html.escape(text)
