"""The trained network as one self-contained web page: draw a digit, watch it being classified.

:func:`export_html` writes a single HTML file that needs nothing else (no server, no
internet, no library): the four parameter tensors are embedded as base64 of their
little-endian float32 bytes, and a short plain JavaScript program repeats the network's
arithmetic in float32 (``x @ W1 + b1``, ReLU, ``@ W2 + b2``, softmax), so that the page
gives PyTorch's probabilities to within about 1e-6.

The page prepares a drawing the way MNIST's digits were prepared (:func:`preprocess_drawing`
is the same computation in PyTorch, for tests and notebooks): crop to the ink, scale the
longer side to 20 pixels (antialiased), centre the centre of mass in a 28x28 frame.

For scripts and tests the page exposes, on ``window``:

* ``classifyPixels(array784)`` -> ``{probs, pred, logits}`` (no preprocessing);
* ``classifyCanvas()`` -> ``{probs, pred, pixels}`` for what is on the canvas (all ``null``
  when nothing is drawn); it also refreshes the bars;
* ``drawImage28(array784, {scale, left, top})`` paints a 28x28 image (an MNIST digit,
  say) onto the canvas, enlarged and off-centre, then classifies it;
* ``canvasGrey()`` -> ``{width, height, data}``: the canvas as grey levels 0-255, row by
  row (what :func:`preprocess_drawing` takes, divided by 255);
* ``preprocessGrey(data, width, height)`` -> the 784 pixels (or ``null`` when blank);
* ``clearCanvas()``.

    >>> export_html(params, "digits.html")      # params: {"W1", "b1", "W2", "b2"} or a 4-tuple
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

NAMES = ("W1", "b1", "W2", "b2")
#: pixels brighter than this count as ink when finding the drawing's bounding box
INK = 0.02
#: MNIST's digits fit a 20x20 box, placed in a 28x28 image with their centre of mass at (14, 14)
BOX, SIZE, CENTRE = 20, 28, 14.0
#: the drawing canvas of the page, in pixels, and the brush width
CANVAS, BRUSH = 280, 20


def check_params(params) -> dict[str, torch.Tensor]:
    """The four tensors as detached, contiguous float32 CPU tensors, their shapes checked.

    ``params`` is a dict with keys ``W1, b1, W2, b2`` (what lesson 07's ``save_params``
    writes) or a sequence of the four in that order, in the course's layout:
    ``W1 [784, H]``, ``b1 [H]``, ``W2 [H, 10]``, ``b2 [10]`` (the layer computes ``x @ W + b``).
    """
    if isinstance(params, Mapping):
        missing = [k for k in NAMES if k not in params]
        if missing:
            raise KeyError(f"params lacks {', '.join(missing)}; expected the four tensors W1, b1, W2, b2")
        tensors = [params[k] for k in NAMES]
    elif isinstance(params, Sequence) and len(params) == 4:
        tensors = list(params)
    else:
        raise TypeError("params must be a dict with W1, b1, W2, b2 or a sequence (W1, b1, W2, b2)")
    out = {}
    for name, t in zip(NAMES, tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        t = t.detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        out[name] = t
    W1, b1, W2, b2 = (out[k] for k in NAMES)
    if W1.dim() != 2 or W1.shape[0] != SIZE * SIZE:
        raise ValueError(f"W1 must be [784, hidden] (x @ W1 + b1), got {list(W1.shape)}"
                         + (" - transposed? nn.Linear keeps [out, in]" if W1.dim() == 2 and W1.shape[1] == 784 else ""))
    hidden = W1.shape[1]
    expected = {"b1": [hidden], "W2": [hidden, 10], "b2": [10]}
    for name, shape in expected.items():
        if list(out[name].shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for W1 {list(W1.shape)}, got {list(out[name].shape)}")
    return out


@torch.no_grad()
def probabilities(params, pixels: torch.Tensor) -> torch.Tensor:
    """What the page computes, in PyTorch: softmax(relu(x @ W1 + b1) @ W2 + b2), float32 [B, 10].

    ``pixels`` is [784] or [B, 784] with values in [0, 1].
    """
    p = check_params(params)
    x = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, SIZE * SIZE)
    logits = torch.relu(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return torch.softmax(logits, dim=1)


def _as_image(image) -> torch.Tensor:
    image = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if image.dim() != 2 or image.numel() == 0:
        raise ValueError(f"expected a 2-D image [H, W], got shape {list(image.shape)}")
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    elif not image.is_floating_point():
        raise TypeError(f"expected uint8 grey levels or floats in [0, 1], got {image.dtype}")
    image = image.detach().to("cpu", torch.float32)
    if torch.isnan(image).any():
        raise ValueError("the image contains NaN")
    if image.min() < 0 or image.max() > 1:
        raise ValueError(f"values must lie in [0, 1], got [{float(image.min()):.3g}, {float(image.max()):.3g}]")
    return image


def resample_matrix(n: int, m: int) -> torch.Tensor:
    """float64 [m, n]: resampling a line of ``n`` pixels to ``m`` pixels, one output pixel per row.

    The triangle (bilinear) filter with antialiasing, as in PIL and in
    ``F.interpolate(mode="bilinear", antialias=True, align_corners=False)``: output pixel
    ``o`` is centred at ``(o + 0.5) * n / m`` in input coordinates; when shrinking, the
    triangle widens to ``n / m`` input pixels on each side, so every input pixel counts
    (an average, not a sample). Each row sums to 1.
    """
    if n < 1 or m < 1:
        raise ValueError(f"sizes must be at least 1, got {n} -> {m}")
    scale = n / m
    support, inv = (scale, 1 / scale) if scale >= 1 else (1.0, 1.0)
    A = torch.zeros(m, n, dtype=torch.float64)
    for o in range(m):
        centre = scale * (o + 0.5)
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n)
        w = [max(0.0, 1 - abs((j - centre + 0.5) * inv)) for j in range(lo, hi)]
        total = sum(w)
        A[o, lo:hi] = torch.tensor([v / total for v in w], dtype=torch.float64)
    return A


def preprocess_drawing(image) -> torch.Tensor:
    """A drawing made to look like an MNIST digit: float32 [784] in [0, 1], the page's own steps.

    ``image`` is [H, W], white ink on black: floats in [0, 1] or uint8 grey levels.

    1. crop to the bounding box of the ink (pixels above :data:`INK`);
    2. scale the longer side to 20 pixels keeping the aspect ratio (other side rounded
       half to even), bilinear with antialiasing (:func:`resample_matrix`), so that
       shrinking averages pixels instead of skipping them;
    3. paste into a black 28x28 image so that the centre of mass lands on (14, 14),
       rounded to whole pixels, never pushing ink over the border.

    Raises ValueError for a blank drawing (nothing above :data:`INK`).
    """
    image = _as_image(image)
    ink = image > INK
    if not ink.any():
        raise ValueError("empty drawing: no pixel is brighter than the ink threshold, so there is nothing to classify")
    rows = ink.any(1).nonzero().flatten()
    cols = ink.any(0).nonzero().flatten()
    crop = image[int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = (resample_matrix(h, new_h) @ crop.double() @ resample_matrix(w, new_w).T).clamp(0, 1).float()
    total = small.double().sum()
    cy = float((small.double().sum(1) * torch.arange(new_h, dtype=torch.float64)).sum() / total)
    cx = float((small.double().sum(0) * torch.arange(new_w, dtype=torch.float64)).sum() / total)
    top = min(max(math.floor(CENTRE - cy + 0.5), 0), SIZE - new_h)
    left = min(max(math.floor(CENTRE - cx + 0.5), 0), SIZE - new_w)
    out = torch.zeros(SIZE, SIZE)
    out[top:top + new_h, left:left + new_w] = small
    return out.reshape(SIZE * SIZE)


def encode(tensor: torch.Tensor) -> str:
    """Base64 of the tensor's values as little-endian float32, row by row."""
    return base64.b64encode(tensor.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes()).decode("ascii")


def decode(text: str, shape: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`encode`."""
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32).reshape(shape))


# The page's program. %%NET%% is replaced by the parameters (JSON), nothing else is filled in.
SCRIPT = r"""
"use strict";
const NET = %%NET%%;
const INK = %%INK%%, BOX = 20, SIZE = 28, CENTRE = 14;
const f32 = Math.fround;

function decode(b64, n) {                 // base64 of little-endian float32 -> Float32Array
  const bin = atob(b64), view = new DataView(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}
const H = NET.hidden;
const W1 = decode(NET.W1, 784 * H), b1 = decode(NET.b1, H), W2 = decode(NET.W2, H * 10), b2 = decode(NET.b2, 10);

function linear(x, W, b, nIn, nOut) {     // x @ W + b, W stored row by row as [nIn, nOut], float32 sums
  const out = new Float32Array(nOut);
  for (let j = 0; j < nOut; j++) {
    let acc = 0;
    for (let i = 0; i < nIn; i++) acc = f32(acc + f32(x[i] * W[i * nOut + j]));
    out[j] = f32(acc + b[j]);
  }
  return out;
}

function classifyPixels(pixels) {        // 784 values in [0, 1] -> {probs, pred, logits}
  if (pixels.length !== 784) throw new Error("expected 784 pixels, got " + pixels.length);
  const x = Float32Array.from(pixels);
  const h = linear(x, W1, b1, 784, H).map(v => (v > 0 ? v : 0));     // ReLU
  const z = linear(h, W2, b2, H, 10);
  const m = Math.max(...z);
  const e = Array.from(z, v => Math.exp(v - m));                     // softmax, shifted by the max
  const s = e.reduce((a, v) => a + v, 0);
  const probs = e.map(v => f32(v / s));
  return {probs, pred: probs.indexOf(Math.max(...probs)), logits: Array.from(z)};
}

function roundHalfEven(v) {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1);
}

function weights(n, m) {                  // resampling n -> m: PIL's triangle filter, widened when shrinking
  const scale = n / m, support = scale >= 1 ? scale : 1, inv = scale >= 1 ? 1 / scale : 1, rows = [];
  for (let o = 0; o < m; o++) {
    const centre = scale * (o + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0), hi = Math.min(Math.trunc(centre + support + 0.5), n);
    const w = [];
    for (let j = lo; j < hi; j++) w.push(Math.max(0, 1 - Math.abs((j - centre + 0.5) * inv)));
    const total = w.reduce((a, v) => a + v, 0);
    rows.push({lo, w: w.map(v => v / total)});
  }
  return rows;
}

function preprocessGrey(data, width, height) {  // grey levels 0-255, row by row -> 784 pixels or null
  let r0 = height, r1 = -1, c0 = width, c1 = -1;
  const img = new Float32Array(width * height);
  for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) {
    const v = f32(data[r * width + c] / 255);
    img[r * width + c] = v;
    if (v > INK) { r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c); }
  }
  if (r1 < 0) return null;                            // nothing drawn
  const h = r1 - r0 + 1, w = c1 - c0 + 1, scale = BOX / Math.max(h, w);
  const nh = Math.max(1, roundHalfEven(h * scale)), nw = Math.max(1, roundHalfEven(w * scale));
  const across = weights(w, nw), down = weights(h, nh), wide = new Float64Array(h * nw);
  for (let r = 0; r < h; r++) for (let c = 0; c < nw; c++) {   // along the rows first, then down the columns
    let acc = 0;
    across[c].w.forEach((wt, k) => { acc += img[(r0 + r) * width + c0 + across[c].lo + k] * wt; });
    wide[r * nw + c] = acc;
  }
  const small = new Float32Array(nh * nw);
  let total = 0, sy = 0, sx = 0;
  for (let r = 0; r < nh; r++) for (let c = 0; c < nw; c++) {
    let acc = 0;
    down[r].w.forEach((wt, k) => { acc += wide[(down[r].lo + k) * nw + c] * wt; });
    const v = f32(Math.min(Math.max(acc, 0), 1));
    small[r * nw + c] = v;
    total += v; sy += v * r; sx += v * c;
  }
  const top = Math.min(Math.max(Math.floor(CENTRE - sy / total + 0.5), 0), SIZE - nh);
  const left = Math.min(Math.max(Math.floor(CENTRE - sx / total + 0.5), 0), SIZE - nw);
  const out = new Array(784).fill(0);
  for (let r = 0; r < nh; r++) for (let c = 0; c < nw; c++) out[(top + r) * SIZE + left + c] = small[r * nw + c];
  return out;
}

const pad = document.getElementById("pad"), ctx = pad.getContext("2d", {willReadFrequently: true});
const seen = document.getElementById("seen"), seenCtx = seen.getContext("2d");

function canvasGrey() {
  const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data, data = new Array(pad.width * pad.height);
  for (let i = 0; i < data.length; i++) data[i] = rgba[4 * i];      // white ink: the red channel is the grey level
  return {width: pad.width, height: pad.height, data};
}

function show(result) {
  const img = seenCtx.createImageData(SIZE, SIZE);
  for (let i = 0; i < 784; i++) {
    const g = result.pixels ? Math.round(result.pixels[i] * 255) : 0;
    img.data.set([g, g, g, 255], 4 * i);
  }
  seenCtx.putImageData(img, 0, 0);
  document.getElementById("answer").textContent =
    result.probs ? "It looks like a " + result.pred + " (" + (100 * result.probs[result.pred]).toFixed(1) + "%)" : "Draw a digit.";
  for (let d = 0; d < 10; d++) {
    const p = result.probs ? result.probs[d] : 0, row = document.getElementById("bar-" + d);
    row.querySelector(".fill").style.width = (100 * p).toFixed(2) + "%";
    row.querySelector(".value").textContent = (100 * p).toFixed(1) + "%";
    row.classList.toggle("best", result.probs !== null && d === result.pred);
  }
}

function classifyCanvas() {
  const g = canvasGrey(), pixels = preprocessGrey(g.data, g.width, g.height);
  const result = pixels ? Object.assign(classifyPixels(pixels), {pixels}) : {probs: null, pred: null, pixels: null};
  show(result);
  return result;
}

function clearCanvas() {
  ctx.fillStyle = "black";
  ctx.fillRect(0, 0, pad.width, pad.height);
  return classifyCanvas();
}

function drawImage28(pixels, opts) {          // paint a 28x28 image, enlarged, then classify
  const o = Object.assign({scale: 7, left: 60, top: 50}, opts || {});
  const small = document.createElement("canvas");
  small.width = small.height = SIZE;
  const sctx = small.getContext("2d"), img = sctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < 784; i++) {
    const g = Math.round(Math.min(Math.max(pixels[i], 0), 1) * 255);
    img.data.set([g, g, g, 255], 4 * i);
  }
  sctx.putImageData(img, 0, 0);
  ctx.fillStyle = "black";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(small, o.left, o.top, SIZE * o.scale, SIZE * o.scale);
  return classifyCanvas();
}

// drawing with a mouse, a pen or a finger
let last = null, pending = false;
function point(ev) {
  const box = pad.getBoundingClientRect();
  return [(ev.clientX - box.left) * pad.width / box.width, (ev.clientY - box.top) * pad.height / box.height];
}
function segment(a, b) {
  ctx.strokeStyle = "white"; ctx.lineWidth = %%BRUSH%%; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}
function later() {                             // classify at most once per frame while drawing
  if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; classifyCanvas(); }); }
}
function down(ev) { ev.preventDefault(); last = point(ev); segment(last, last); later(); }
function move(ev) { if (last === null) return; ev.preventDefault(); const p = point(ev); segment(last, p); last = p; later(); }
function up() { if (last !== null) { last = null; classifyCanvas(); } }
if (window.PointerEvent) {
  pad.addEventListener("pointerdown", ev => { pad.setPointerCapture(ev.pointerId); down(ev); });
  pad.addEventListener("pointermove", move);
  pad.addEventListener("pointerup", up);
  pad.addEventListener("pointercancel", up);
} else {
  pad.addEventListener("mousedown", down); window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
  const touch = f => ev => f(Object.assign(ev.touches[0] || {}, {preventDefault: () => ev.preventDefault()}));
  pad.addEventListener("touchstart", touch(down), {passive: false});
  pad.addEventListener("touchmove", touch(move), {passive: false});
  pad.addEventListener("touchend", up);
}
document.getElementById("clear").addEventListener("click", clearCanvas);

Object.assign(window, {classifyPixels, classifyCanvas, preprocessGrey, canvasGrey, drawImage28, clearCanvas});
clearCanvas();
window.pageReady = true;
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%%</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  p.note { color: #555; margin: 0 0 16px; max-width: 62ch; }
  .row { display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }
  #pad { border: 1px solid #888; touch-action: none; cursor: crosshair; background: black; }
  #seen { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #888; }
  button { margin-top: 8px; font-size: 15px; padding: 4px 16px; }
  #answer { font-size: 20px; margin-bottom: 10px; min-height: 26px; }
  .bar { display: flex; align-items: center; height: 22px; }
  .bar .digit { width: 18px; }
  .bar .track { width: 200px; height: 14px; background: #eef; }
  .bar .fill { height: 100%; width: 0; background: #9ab; }
  .bar .value { margin-left: 8px; font-size: 12px; width: 48px; }
  .bar.best .fill { background: #1b9e77; }
  .bar.best .digit { font-weight: bold; }
</style>
</head>
<body>
<h1>%%TITLE%%</h1>
<p class="note">Draw a digit, white on black. The network (784 &rarr; %%HIDDEN%% &rarr; 10, %%COUNT%% parameters)
runs in this page: the drawing is cropped to its ink, scaled to fit 20&times;20 pixels and centred in
28&times;28 by its centre of mass, as the MNIST digits were.</p>
<div class="row">
  <div><canvas id="pad" width="%%CANVAS%%" height="%%CANVAS%%"></canvas><br><button id="clear">Clear</button></div>
  <div><div>what the network sees</div><canvas id="seen" width="28" height="28"></canvas></div>
  <div><div id="answer"></div><div id="bars">%%BARS%%</div></div>
</div>
<script>%%SCRIPT%%</script>
</body>
</html>
"""


def page_html(params, title: str = "A digit classifier in your browser") -> str:
    """The page as a string (see :func:`export_html`)."""
    p = check_params(params)
    net = {"hidden": int(p["W1"].shape[1]), **{k: encode(p[k]) for k in NAMES}}
    script = (SCRIPT.replace("%%NET%%", json.dumps(net)).replace("%%INK%%", repr(INK))
              .replace("%%BRUSH%%", str(BRUSH)))
    bars = "".join(f'<div class="bar" id="bar-{d}"><span class="digit">{d}</span><span class="track">'
                   f'<div class="fill"></div></span><span class="value"></span></div>' for d in range(10))
    count = sum(t.numel() for t in p.values())
    replacements = {"%%TITLE%%": html.escape(title), "%%HIDDEN%%": str(net["hidden"]), "%%COUNT%%": f"{count:,}",
                    "%%CANVAS%%": str(CANVAS), "%%BARS%%": bars}
    page = PAGE
    for key, value in replacements.items():
        page = page.replace(key, value)
    return page.replace("%%SCRIPT%%", script)


def export_html(params, path, title: str = "A digit classifier in your browser") -> Path:
    """Write the network to one self-contained HTML file at ``path``; returns the path.

    ``params``: ``{"W1", "b1", "W2", "b2"}`` (lesson 07's ``mnist_mlp.pt``) or ``(W1, b1, W2, b2)``,
    in the course's layout (``x @ W1 + b1``). Open the file in any browser; it needs no network.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the page should be an .html file, got {path.name!r}")
    text = page_html(params, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
