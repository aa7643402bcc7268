"""The Explorer's panel: control state -> engine -> in-place figure updates, and what sits
around the chart.

Where things live:

- ``core.py``: ``Panel``: the one ``PanelState``, the render loop (state -> engine ->
  figure -> sections -> controls -> status) and the public calls.
- ``base.py``: what a section is (``Section``), what it may ask of the panel (``Host``,
  ``Shown``), and ``weak`` callbacks that never keep a panel alive.
- ``sections.py``: the sections every panel gets, in order; a new view is a ``Section``
  subclass in its own module, listed there.
- ``reactions.py``: which control change becomes which state transition (``REACTIONS``), bar
  clicks, class search, the figure's width.
- ``layout.py``: what sits where in the panel's outer box.
- ``view.py``: a result drawn as the state says (``PanelView``), its caption, shared ranges.
- ``status.py``: the busy, error and status lines.
- ``images.py``: the images shown, their predictions, pictures and the class list.
- ``words.py``, ``faithfulness.py``: the sections under the chart (the map in words; deletion
  and insertion against random maps).

Message size. plotly's FigureWidget sends a 2-D numpy array as a nested JSON list (a 224x224
float heat map is about 1 MB of text) and a 1-D numeric array as a binary buffer. Every map is
therefore drawn from 1-D (x, y, z) columns of float32 (``figures.grid``): x and y depend only on
the grid and are re-sent only when it changes, and the values travel as float32 binary. The heat
map over the picture is drawn from at most ``WIRE_MAX_SIDE`` pixels per axis (72 x 72 = 20 KB at
224 x 224 instead of 200 KB), with the map's exact values at those pixels and plotly.js
interpolating between them; the maps on the layer's own grid (coarse map, A^k, alpha_k A^k) are
always sent whole, so hover gives every exact value there. The picture is a PNG sent once per
image. Measured on ResNet-50 (benchmarks/bench_widget.py): a class switch or counterfactual
toggle sends 23 KB at layer4 and 59 KB at layer1 (56 x 56 maps); a layer switch also sends the
new grid's coordinates (24 KB to layer4, 78 KB to layer1).

Landing. All panels are subplots of ONE FigureWidget, built whole before it is wrapped: in Voila,
with several FigureWidgets on a page, an update right after the first draw sometimes did not
reach one of them. The widget also gives a front end that connects after the notebook ran
(Voila) the figure as it is, not as it was built, and re-sends its state to a view that drew an
old one (``figure_widget.FigureWidget``).
"""

from .base import Host, Section, Shown
from .core import WIRE_MAX_SIDE, Panel
from .images import TOP_K

__all__ = ["TOP_K", "WIRE_MAX_SIDE", "Host", "Panel", "Section", "Shown"]
