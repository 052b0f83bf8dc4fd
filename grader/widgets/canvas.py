"""Lesson 10's finale: draw a digit and watch a network classify it.

The logic is in plain functions that tests call:

* :func:`stamp_line` paints one brush stroke into a float raster (the drawing lives in
  Python, so it can be classified without a browser reading pixels back);
* :func:`preprocess_drawing` turns any drawing into what MNIST images look like: cropped
  to the ink, the longest side scaled to 20 pixels (antialiased, aspect ratio kept), and
  placed in a 28x28 frame with the centre of mass at (14, 14);
* :func:`classify` runs a network on it; :func:`place_image` "draws" an existing image
  (an MNIST digit, say) onto the pad, for demos that must not wait for a mouse.

:class:`DigitPad` is the thin ipycanvas view: mouse strokes, a Clear button, the 28x28
image the network sees, and the probabilities as a bar chart.
"""

from __future__ import annotations

import html
import math
import time
from typing import Callable

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from grader import web
from grader.web import INK, SIZE   # one recipe for the pad and the web page


def _check_image(image) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor [H, W], got {type(image).__name__}")
    if image.dim() != 2:
        raise ValueError(f"expected a 2-D image [H, W], got shape {list(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"expected float values in [0, 1], got dtype {image.dtype} (divide uint8 images by 255)")
    if image.numel() == 0:
        raise ValueError("the image is empty (a dimension of size 0)")
    if torch.isnan(image).any():
        raise ValueError("the image contains NaN")
    if image.min() < 0 or image.max() > 1:
        raise ValueError(f"values must lie in [0, 1], got [{float(image.min()):.3g}, {float(image.max()):.3g}]")
    return image.detach().to(torch.float32)


def is_blank(image: torch.Tensor) -> bool:
    """True when nothing is drawn: no pixel brighter than :data:`INK`."""
    return not bool((_check_image(image) > INK).any())


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean pixel position, in pixel indices (0 = first row)."""
    image = image.detach().double()
    total = image.sum()
    if total <= 0:
        raise ValueError("an all-zero image has no centre of mass")
    rows = torch.arange(image.shape[0], dtype=torch.float64)
    cols = torch.arange(image.shape[1], dtype=torch.float64)
    return float((image.sum(1) * rows).sum() / total), float((image.sum(0) * cols).sum() / total)


def preprocess_drawing(image: torch.Tensor) -> torch.Tensor:
    """Make a drawing look like an MNIST digit, ready for a 784-input network.

    The steps MNIST's authors applied to their scans (the web page of :mod:`grader.web` runs
    the same ones in JavaScript, and this function is that module's, so both see a drawing alike):

    1. crop to the bounding box of the ink (pixels above :data:`INK`);
    2. scale so that the longer side is 20 pixels, keeping the aspect ratio (bilinear with
       antialiasing, so that shrinking averages pixels instead of skipping them);
    3. paste into a black 28x28 image so that the centre of mass lands on pixel (14, 14)
       (rounded to whole pixels, as in MNIST). Where that would push ink over the border,
       the digit moves only as far as the frame allows.

    Args:
        image: float tensor [H, W] with values in [0, 1], 0 = background, 1 = ink. Any size.

    Returns:
        float32 tensor [784]: the 28x28 result flattened row by row, values in [0, 1].

    Raises:
        ValueError: for an empty drawing (no pixel above :data:`INK`): there is nothing
            to classify, and a blank image would still get a confident-looking answer.
        TypeError / ValueError: for something that is not a [H, W] float image in [0, 1].
    """
    return web.preprocess_drawing(_check_image(image))


def stamp_line(raster: torch.Tensor, x0: float, y0: float, x1: float, y1: float, radius: float) -> torch.Tensor:
    """Paint a round-ended brush stroke from (x0, y0) to (x1, y1) into ``raster``, in place.

    ``x`` is the column and ``y`` the row, in pixels (as mouse events report them). A pixel
    gets ``clamp(radius + 0.5 - distance to the segment, 0, 1)``: full ink inside the brush,
    a one-pixel antialiased edge; ink already there is kept (maximum). Points outside the
    raster are fine: only the part that falls inside is painted. Returns ``raster``.
    """
    if raster.dim() != 2 or not raster.is_floating_point():
        raise ValueError(f"raster must be a 2-D float tensor, got {raster.dtype} {list(raster.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    H, W = raster.shape
    pad = radius + 1.5
    r0, r1 = max(0, math.floor(min(y0, y1) - pad)), min(H, math.ceil(max(y0, y1) + pad) + 1)
    c0, c1 = max(0, math.floor(min(x0, x1) - pad)), min(W, math.ceil(max(x0, x1) + pad) + 1)
    if r0 >= r1 or c0 >= c1:
        return raster
    ys = torch.arange(r0, r1, dtype=torch.float32)[:, None]
    xs = torch.arange(c0, c1, dtype=torch.float32)[None, :]
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 == 0:
        t = torch.zeros(())
    else:
        t = (((xs - x0) * dx + (ys - y0) * dy) / length2).clamp(0, 1)
    dist = torch.sqrt((xs - (x0 + t * dx)) ** 2 + (ys - (y0 + t * dy)) ** 2)
    paint = (radius + 0.5 - dist).clamp(0, 1)
    region = raster[r0:r1, c0:c1]
    torch.maximum(region, paint, out=region)
    return raster


def place_image(image: torch.Tensor, size: int = 280, scale: float = 8.0, top: int = 20, left: int = 40) -> torch.Tensor:
    """A ``size`` x ``size`` pad with ``image`` (e.g. a 28x28 MNIST digit) scaled by ``scale`` at (top, left).

    Bilinear upscaling, as if the digit had been drawn large and off-centre. Parts that
    fall outside the pad are cut off.
    """
    image = _check_image(image)
    h, w = round(image.shape[0] * scale), round(image.shape[1] * scale)
    if h < 1 or w < 1:
        raise ValueError(f"scale {scale} leaves nothing of a {list(image.shape)} image")
    big = F.interpolate(image[None, None], size=(h, w), mode="bilinear", align_corners=False,
                        antialias=scale < 1)[0, 0].clamp(0, 1)
    pad = torch.zeros(size, size)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, size), min(left + w, size)
    if r0 < r1 and c0 < c1:
        pad[r0:r1, c0:c1] = big[r0 - top:r1 - top, c0 - left:c1 - left]
    return pad


@torch.no_grad()
def classify(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [10], the preprocessed [784] input) for a drawing ``image`` [H, W].

    ``model`` maps a batch [B, 784] to logits [B, 10].
    """
    x = preprocess_drawing(image)
    logits = model(x[None])
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (1, 10):
        raise ValueError(f"the model should return logits of shape [1, 10], got "
                         f"{list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    return torch.softmax(logits[0].double(), dim=0).float(), x


def bars_html(probs: torch.Tensor | None) -> str:
    """The ten probabilities as horizontal bars, the most likely digit highlighted."""
    if probs is None:
        return "<div style='color:#666; width:260px'>Draw a digit (white on black) to see what the network thinks.</div>"
    if probs.shape != (10,):
        raise ValueError(f"expected 10 probabilities, got shape {list(probs.shape)}")
    best = int(probs.argmax())
    rows = []
    for digit, p in enumerate(probs.tolist()):
        colour = "#1b9e77" if digit == best else "#9ab"
        rows.append(f"<div style='display:flex; align-items:center; height:20px'>"
                    f"<span style='width:18px; font-weight:{'bold' if digit == best else 'normal'}'>{digit}</span>"
                    f"<span style='display:inline-block; height:14px; width:{max(p * 200, 1):.1f}px; "
                    f"background:{colour}'></span><span style='margin-left:6px; font-size:11px'>{p:.1%}</span></div>")
    head = f"<div style='font-size:18px; margin-bottom:6px'>It looks like a <b>{best}</b> ({float(probs[best]):.1%})</div>"
    return f"<div style='width:280px'>{head}{''.join(rows)}</div>"


def to_rgba(image: torch.Tensor, zoom: int = 1) -> np.ndarray:
    """A [H*zoom, W*zoom, 4] uint8 grey image (white ink on black) for ``Canvas.put_image_data``."""
    grey = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if zoom > 1:
        grey = np.kron(grey, np.ones((zoom, zoom), dtype=np.uint8))
    rgba = np.empty(grey.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 255
    return rgba


def plot_result(pad: torch.Tensor, x: torch.Tensor, probs: torch.Tensor, label: int | None = None):
    """What was drawn, what the network sees after preprocessing, and its probabilities."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.1), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    axes[0].imshow(pad.detach().numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"the pad, {pad.shape[0]}x{pad.shape[1]}")
    axes[1].imshow(x.detach().reshape(SIZE, SIZE).numpy(), cmap="gray", vmin=0, vmax=1)
    cy, cx = centre_of_mass(x.reshape(SIZE, SIZE))
    axes[1].plot([cx], [cy], "r+", ms=12)
    axes[1].set_title(f"what the network sees, 28x28\n(+ = centre of mass {cy:.1f}, {cx:.1f})", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    best = int(probs.argmax())
    axes[2].bar(range(10), probs.tolist(), color=["#1b9e77" if d == best else "#9ab" for d in range(10)])
    axes[2].set_xticks(range(10))
    axes[2].set_ylim(0, 1)
    title = f"prediction {best} ({float(probs[best]):.1%})"
    axes[2].set_title(title + (f", label {label}" if label is not None else ""))
    fig.tight_layout()
    return fig


class DigitPad:
    """A drawing pad wired to a classifier: draw with the mouse, read the bars.

    ``pad = DigitPad(model)``; display ``pad.widget``. :meth:`show_image` puts an existing
    image on the pad (no mouse needed); :meth:`clear` empties it. The drawing itself is
    ``pad.raster`` (float [size, size] in [0, 1]); ``pad.probs`` holds the last answer.
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], size: int = 280, brush: float = 10.0,
                 refresh_s: float = 0.12):
        from ipycanvas import Canvas, hold_canvas       # imported here: tests of the plain functions do not need it

        self._hold = hold_canvas
        self.model, self.size, self.brush, self.refresh_s = model, size, brush, refresh_s
        self.raster = torch.zeros(size, size)
        self.probs: torch.Tensor | None = None
        self.error: str | None = None
        self._last: tuple[float, float] | None = None
        self._last_update = 0.0
        self.canvas = Canvas(width=size, height=size, layout=w.Layout(width=f"{size}px", height=f"{size}px",
                                                                       border="1px solid #888"))
        self.preview = Canvas(width=SIZE * 4, height=SIZE * 4, layout=w.Layout(width=f"{SIZE * 4}px",
                                                                              height=f"{SIZE * 4}px"))
        self.bars = w.HTML(bars_html(None))
        self.clear_button = w.Button(description="Clear", icon="eraser")
        self.clear_button.on_click(lambda _: self.clear())
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_mouse_out(self._up)
        self.canvas.on_client_ready(self._repaint)
        self._repaint()
        self.widget = w.HBox([w.VBox([self.canvas, self.clear_button]),
                              w.VBox([w.HTML("<b>what the network sees</b>"), self.preview]), self.bars],
                             layout=w.Layout(align_items="flex-start"))
        for child in self.widget.children[:2]:
            child.layout.margin = "0 16px 0 0"

    # drawing
    def _style(self):
        self.canvas.stroke_style = "white"
        self.canvas.line_width = 2 * self.brush
        self.canvas.line_cap = "round"

    def _repaint(self):
        with self._hold():
            self.canvas.put_image_data(to_rgba(self.raster), 0, 0)
            self._style()

    def _segment(self, x0, y0, x1, y1):
        stamp_line(self.raster, x0, y0, x1, y1, self.brush)
        with self._hold():
            self._style()
            self.canvas.stroke_line(x0, y0, x1, y1)

    def _down(self, x, y):
        self._last = (x, y)
        self._segment(x, y, x, y)

    def _move(self, x, y):
        if self._last is None:
            return
        self._segment(*self._last, x, y)
        self._last = (x, y)
        if time.monotonic() - self._last_update > self.refresh_s:
            self.update()

    def _up(self, x, y):
        if self._last is not None:
            self._last = None
            self.update()

    def stroke(self, points: list[tuple[float, float]]) -> None:
        """Draw a stroke through ``points`` [(x, y), ...] as the mouse would, then classify."""
        for (x0, y0), (x1, y1) in zip(points[:1] + points[:-1], points):
            self._segment(x0, y0, x1, y1)
        self.update()

    def show_image(self, image: torch.Tensor) -> torch.Tensor | None:
        """Replace the drawing by ``image`` (float [size, size] in [0, 1]) and classify it."""
        image = _check_image(image)
        if tuple(image.shape) != (self.size, self.size):
            raise ValueError(f"the pad is {self.size}x{self.size}, got an image of shape {list(image.shape)} "
                             f"(place_image() puts a small image on a pad)")
        self.raster = image.clone()
        self._repaint()
        return self.update()

    def clear(self) -> None:
        self.raster.zero_()
        self._last = None
        self._repaint()
        self.update()

    # classifying
    def update(self) -> torch.Tensor | None:
        """Classify the current drawing; refresh the preview and the bars. Returns the probabilities."""
        self._last_update = time.monotonic()
        self.error = None
        if is_blank(self.raster):
            self.probs = None
            self.bars.value = bars_html(None)
            with self._hold():
                self.preview.put_image_data(to_rgba(torch.zeros(SIZE, SIZE), zoom=4), 0, 0)
            return None
        try:
            self.probs, x = classify(self.model, self.raster)
        except Exception as err:                 # the student's model: show the problem, keep the pad alive
            self.probs, self.error = None, f"{type(err).__name__}: {err}"
            self.bars.value = f"<pre style='color:#b3261e; white-space:pre-wrap'>{html.escape(self.error)}</pre>"
            return None
        with self._hold():
            self.preview.put_image_data(to_rgba(x.reshape(SIZE, SIZE), zoom=4), 0, 0)
        self.bars.value = bars_html(self.probs)
        return self.probs
